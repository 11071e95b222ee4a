"""OpenTelemetry tracing, when the project has it (``opentelemetry-api``; nothing to install
otherwise, and nothing is done).

``schedule()`` writes the W3C trace context of the code that calls it (``traceparent``, and
``tracestate`` when there is one) into the row's ``trace_context``, if a span is recording
there, typically a request's; the consumer runs the task inside a span of that trace, so a
trace shows the request and the tasks it caused, across processes and machines. The span is
named ``run <task name>`` (kind ``CONSUMER``), with the task's id, attempt and queue as
attributes and, when the task raises, the exception. ``FIREFLY_TRACING = False`` turns it off.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from firefly_tasks.conf import settings

try:
    from opentelemetry import propagate, trace

    _SILENT: tuple[type, ...] = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
except ImportError:  # pragma: no cover - where OpenTelemetry is not installed
    propagate = trace = None  # type: ignore[assignment]
    _SILENT = ()

_NOTHING = contextlib.nullcontext()


def carried() -> str:
    """The trace context to store with a task scheduled now: ``""`` outside a valid span."""
    if trace is None or not settings.TRACING:
        return ""
    if not trace.get_current_span().get_span_context().is_valid:
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return json.dumps(carrier, separators=(",", ":")) if carrier else ""


def span(row: Any) -> contextlib.AbstractContextManager[Any]:
    """The span a task's attempt runs in, child of the trace its row carries (a trace of its
    own when it carries none); a no-op without OpenTelemetry, or while no SDK is configured
    (the API's own provider records nothing, and a span would cost several µs a task)."""
    if trace is None or not settings.TRACING:
        return _NOTHING
    if isinstance(trace.get_tracer_provider(), _SILENT):
        return _NOTHING
    parent = None
    if row.trace_context:
        try:
            parent = propagate.extract(json.loads(row.trace_context))
        except (ValueError, TypeError, AttributeError):
            parent = None  # not ours to fail a task for: a trace of its own
    return trace.get_tracer("firefly_tasks").start_as_current_span(
        f"run {row.func_name}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "firefly.task.id": row.pk,
            "firefly.task.name": row.func_name,
            "firefly.task.attempt": row.attempt,
            "firefly.task.queue": row.queue,
        },
    )
