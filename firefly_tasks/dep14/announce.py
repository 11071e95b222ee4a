"""The framework's ``task_started`` and ``task_finished`` signals, sent for the rows of a
FireflyBackend alias from Firefly's own signals, with ``sender`` the backend class and
``task_result`` read from the database. Connected when the process creates its first
FireflyBackend (on enqueue, or when a consumer meets a DEP 14 row)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from firefly_tasks import signals as firefly_signals
from firefly_tasks.dep14.framework import TaskResultDoesNotExist, task_finished, task_started
from firefly_tasks.models import TaskModel

logger = logging.getLogger("firefly_tasks")


# The backend's lookup of a FireflyBackend by alias (it imports this module, not the reverse).
_firefly_backend: Callable[[str], Any] = lambda alias: None  # noqa: E731


def connect(firefly_backend: Callable[[str], Any]) -> None:
    global _firefly_backend
    _firefly_backend = firefly_backend
    firefly_signals.task_started.connect(_started, dispatch_uid="firefly_tasks.dep14.started")
    firefly_signals.task_completed.connect(_completed, dispatch_uid="firefly_tasks.dep14.completed")
    firefly_signals.task_failed.connect(_failed, dispatch_uid="firefly_tasks.dep14.failed")


def _announce(signal: Any, row: TaskModel) -> None:
    backend = _firefly_backend(row.backend)
    if backend is None:
        return
    fresh = TaskModel.objects.select_related("worker").filter(pk=row.pk).first()
    if fresh is None:
        return
    try:
        result = backend.result_for_row(fresh)
    except TaskResultDoesNotExist as exc:
        logger.info("framework signal not sent id=%s reason=%s", row.pk, exc)
        return
    signal.send(type(backend), task_result=result)


def _started(sender: Any, task: TaskModel, **kwargs: Any) -> None:
    _announce(task_started, task)


def _completed(sender: Any, task: TaskModel, **kwargs: Any) -> None:
    _announce(task_finished, task)


def _failed(sender: Any, task: TaskModel, will_retry: bool = False, **kwargs: Any) -> None:
    if not will_retry:
        _announce(task_finished, task)
