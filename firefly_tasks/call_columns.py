"""A call's columns: its task's options resolved against the settings, as every row of one
``schedule()`` stores them (``firefly_tasks.calls``, and the hooks a finished task schedules:
``firefly_tasks.hooks``)."""

from __future__ import annotations

import datetime
from typing import Any

from firefly_tasks import tracing
from firefly_tasks.conf import settings
from firefly_tasks.options import OPTION_ENGINES, TaskOptions, resolve_eta, validate_queue


def column_values(
    name: str,
    options: TaskOptions,
    *,
    now: datetime.datetime,
    eta: object = None,
    serializer: str | None = None,
    backend: str = "",
) -> dict[str, Any]:
    """The columns of a row for a call of task ``name`` with ``options``, every option
    resolved against the settings (``eta`` overrides ``options.eta``): what every call of
    one ``schedule()`` shares."""
    timeout = options.timeout if options.timeout is not None else settings.TASK_TIMEOUT
    return {
        "func_name": name,
        "queue": validate_queue(options.queue or settings.DEFAULT_QUEUE),
        "priority": options.priority,
        "created": now,
        "not_before": resolve_eta(options.eta if eta is None else eta, now),
        "serializer": serializer or settings.SERIALIZER,
        "max_retries": settings.MAX_RETRIES if options.max_retries is None else options.max_retries,
        "retry_delay": settings.RETRY_DELAY if options.retry_delay is None else options.retry_delay,
        "retry_backoff": options.retry_backoff,
        "timeout": timeout,
        "backend": backend,
        # A timeout from settings needs the engine that honours one, as a given one does.
        "min_engine": max(options.min_engine, OPTION_ENGINES["timeout"] if timeout else 1),
        "on_success": options.on_success,
        "on_failure": options.on_failure,
        "label": options.label,
        "trace_context": tracing.carried(),
    }
