"""A ``TaskResult`` read from a task's row and its attempts: its id is the row's primary key,
its ``errors`` the failed (or lost) attempts, its ``worker_ids`` the consumers that ran them."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from firefly_tasks import serialization
from firefly_tasks.dep14.framework import (
    TaskCancelled,
    TaskError,
    TaskResult,
    TaskResultStatus,
    WorkerLost,
)
from firefly_tasks.models import TaskAttempt, TaskModel, WorkerModel
from firefly_tasks.states import AttemptOutcome, TaskStatus

IN_PROCESS_WORKER = "in-process"
"""The worker id of attempts run outside a consumer (``run_pending_tasks``, run-immediately)."""

_STATUSES: dict[str, Any] = {
    TaskStatus.CREATED: TaskResultStatus.READY,
    TaskStatus.BLOCKED: TaskResultStatus.READY,
    TaskStatus.RUNNING: TaskResultStatus.RUNNING,
    TaskStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
    TaskStatus.FAILED: TaskResultStatus.FAILED,
    TaskStatus.CANCELLED: TaskResultStatus.FAILED,
}
_FINISHED_AT: dict[str, str] = {
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "cancelled",
}


def build_result(row: TaskModel, task: Any, attempts: list[TaskAttempt]) -> Any:
    """The ``TaskResult`` of ``row`` (enqueued as ``task``), given its attempts in order."""
    worker_ids = [attempt.worker_name or IN_PROCESS_WORKER for attempt in attempts]
    running = row.status == TaskStatus.RUNNING
    if running:
        worker_ids.append(_worker_name(row))
    errors = [error for attempt in attempts if (error := _task_error(attempt)) is not None]
    if row.status == TaskStatus.CANCELLED:
        errors.append(
            TaskError(
                exception_class_path=_class_path(TaskCancelled),
                traceback=f"{TaskCancelled.__name__}: cancelled before it ran",
            )
        )
    finished_field = _FINISHED_AT.get(row.status)
    first_start = attempts[0].started if attempts else None
    last_start = attempts[-1].started if attempts else None
    args, kwargs = serialization.loads(row.params_data, row.serializer)
    result = TaskResult(
        task=task,
        id=str(row.pk),
        status=_STATUSES[row.status],
        enqueued_at=row.created,
        started_at=first_start or (row.started if running else None),
        finished_at=getattr(row, finished_field) if finished_field else None,
        last_attempted_at=row.started if running else last_start,
        args=args,
        kwargs=kwargs,
        backend=row.backend,
        errors=errors,
        worker_ids=worker_ids,
    )
    if row.status == TaskStatus.COMPLETED:
        object.__setattr__(result, "_return_value", row.returned)
    return result


def copy_state(source: Any, into: Any) -> None:
    """Copy what a result says of the task's run (not what it was called with)."""
    for field in dataclasses.fields(source):
        if field.name not in ("task", "id", "args", "kwargs", "backend"):
            object.__setattr__(into, field.name, getattr(source, field.name))


def _worker_name(row: TaskModel) -> str:
    if row.worker_id is None:
        return IN_PROCESS_WORKER
    try:
        worker = row.worker
    except WorkerModel.DoesNotExist:
        worker = None
    return worker.name if worker is not None else str(row.worker_id)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _task_error(attempt: TaskAttempt) -> Any | None:
    if attempt.outcome in (AttemptOutcome.FAILED, AttemptOutcome.TIMED_OUT):
        return TaskError(
            exception_class_path=exception_class_path(attempt.error, attempt.traceback),
            traceback=attempt.traceback or attempt.error,
        )
    if attempt.outcome == AttemptOutcome.LOST:
        return TaskError(exception_class_path=_class_path(WorkerLost), traceback=attempt.error)
    return None


# The line of a formatted traceback that names the exception: "module.Class: message". Lines
# of exception groups are prefixed with "| ".
_EXCEPTION_LINE = re.compile(r"^(?:\s*\| )?((?:[A-Za-z_]\w*\.)*)([A-Za-z_]\w*)(?::\s|:$|$)")


def exception_class_path(error: str, traceback: str) -> str:
    """The dotted path of the exception class of a failed attempt.

    Attempts store ``"Name: message"`` and the formatted traceback, whose last exception line
    names the class with its module (none for builtins).
    """
    name = error.partition(":")[0].strip()
    fallback = None
    for line in reversed(traceback.splitlines()):
        match = _EXCEPTION_LINE.match(line)
        if match is None:
            continue
        module, found = match.group(1).rstrip("."), match.group(2)
        path = f"{module or 'builtins'}.{found}"
        if found == name:
            return path
        fallback = fallback or path
    return fallback or "builtins.Exception"
