"""Running one claimed task and recording what happened, fenced by its ``attempt``."""

from __future__ import annotations

import datetime
import enum
import logging
import time
import traceback
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from firefly_tasks import serialization, signals
from firefly_tasks.completion import Completion, write_completions
from firefly_tasks.conf import settings
from firefly_tasks.context import current_task as current_task  # re-exported: public API
from firefly_tasks.context import current_task_var
from firefly_tasks.database import atomic_from_first_query, is_connection_error
from firefly_tasks.models import AttemptOutcome, Isolation, TaskAttempt, TaskModel, TaskStatus

if TYPE_CHECKING:
    from firefly_tasks.models import WorkerModel
    from firefly_tasks.registry import RegisteredTask

logger = logging.getLogger("firefly_tasks")


class RunOutcome(enum.StrEnum):
    """What running a claimed task came to (the attempt's outcome is recorded apart)."""

    COMPLETED = "completed"
    FAILED = "failed"
    RETRY = "retry"  # failed, and will run again
    FENCED = "fenced"  # the row moved on to a newer attempt: nothing was written

    @property
    def is_failure(self) -> bool:
        return self in (RunOutcome.FAILED, RunOutcome.RETRY)


class Fenced(Exception):
    """The row is no longer ours: another attempt owns it. Rolls back the task's writes."""


class ConnectionLost(Exception):
    """The database connection broke while a task ran: the task did not fail, the
    infrastructure did. The consumer reconnects and returns the task to the queue."""


def execute(row: TaskModel, worker: WorkerModel | None = None) -> RunOutcome:
    """Run a task a claim has marked ``running``; return what it came to."""
    from firefly_tasks.registry import registry

    try:
        task = registry.resolve(row.func_name, backend=row.backend)
        args, kwargs = serialization.loads(row.params_data, row.serializer)
    except Exception as exc:
        # Retrying cannot fix a name or payload the consumer cannot read.
        return _record_failure(row, worker, exc, retry=False)

    signals.send(signals.task_started, task=row)
    token = current_task_var.set(row)
    began = time.monotonic()
    try:
        if task.atomic:
            with atomic_from_first_query():
                result = call(task, args, kwargs, row)
                _record_completion(row, worker, result)
        else:
            result = call(task, args, kwargs, row)
            with transaction.atomic():
                _record_completion(row, worker, result)
    except Fenced:
        logger.warning(
            "task fenced id=%s name=%s attempt=%s: a newer attempt owns it, %s",
            row.pk,
            row.func_name,
            row.attempt,
            # atomic=False: its writes committed as it made them (at-least-once).
            "writes rolled back" if task.atomic else "its writes (atomic=False) were kept",
        )
        return RunOutcome.FENCED
    except Exception as exc:
        if is_connection_error(exc):
            raise ConnectionLost(str(exc)) from exc
        return _record_failure(row, worker, exc, retry=True)
    finally:
        current_task_var.reset(token)
    logger.info(
        "task completed id=%s name=%s attempt=%s duration=%.3fs",
        row.pk,
        row.func_name,
        row.attempt,
        time.monotonic() - began,
    )
    signals.send(signals.task_completed, task=row, result=result)
    return RunOutcome.COMPLETED


def call(task: RegisteredTask, args: list[Any], kwargs: dict[str, Any], row: TaskModel) -> Any:
    """Call the task's function; its own running time is kept in ``row.run_seconds``."""
    began = time.monotonic()
    try:
        if task.is_async:
            # In this thread: the coroutine's sync_to_async ORM calls come back to this
            # thread, so they share its connection and its atomic block.
            return async_to_sync(task.func)(*args, **kwargs)
        return task.func(*args, **kwargs)
    finally:
        row.run_seconds = time.monotonic() - began


def _fenced(row: TaskModel) -> Any:
    return TaskModel.objects.filter(pk=row.pk, status=TaskStatus.RUNNING, attempt=row.attempt)


def _record_completion(row: TaskModel, worker: WorkerModel | None, result: Any) -> None:
    returned_data = serialization.dumps(result, row.serializer, what="the return value")
    done = Completion(row, result, returned_data, timezone.now())
    if not write_completions([done], worker, settings.PREVIEW_LENGTH):
        raise Fenced


def _record_failure(
    row: TaskModel, worker: WorkerModel | None, exc: BaseException, *, retry: bool
) -> RunOutcome:
    with transaction.atomic():
        outcome = write_failure(row, worker, exc, retry=retry)
    announce_failure(row, exc, outcome)
    return outcome


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) and "durable atomic block" in str(exc):
        return (
            "DurableAtomicError: the task opened transaction.atomic(durable=True), but a task "
            "runs inside the consumer's transaction so that its writes commit with its "
            "completion; use @task(atomic=False) for a task that needs its own durable "
            "transaction"
        )
    return f"{type(exc).__name__}: {exc}"


def write_failure(
    row: TaskModel, worker: WorkerModel | None, exc: BaseException, *, retry: bool
) -> RunOutcome:
    """Record a failed attempt (inside the caller's transaction); return the outcome."""
    error = describe_error(exc)
    tb = "".join(traceback.format_exception(exc))
    now = timezone.now()
    will_retry = retry and row.retry_attempts < row.max_retries
    if will_retry:
        updated = _fenced(row).update(
            status=TaskStatus.CREATED,
            not_before=now + retry_delay(row),
            retry_attempts=F("retry_attempts") + 1,
            worker=None,
            # It ran to its end without taking its consumer down: it may share a batch again.
            isolation=Isolation.BATCHED,
            error=error,
            traceback=tb,
        )
    else:
        updated = _fenced(row).update(
            status=TaskStatus.FAILED, failed=now, error=error, traceback=tb
        )
    if not updated:
        return RunOutcome.FENCED
    attempt_row(row, worker, AttemptOutcome.FAILED, now, error=error, tb=tb).save(force_insert=True)
    row.error, row.traceback = error, tb
    return RunOutcome.RETRY if will_retry else RunOutcome.FAILED


def announce_failure(row: TaskModel, exc: BaseException, outcome: RunOutcome) -> None:
    """Log and signal a failure once it has committed."""
    if outcome == RunOutcome.FENCED:
        logger.warning("task fenced id=%s attempt=%s: failure not recorded", row.pk, row.attempt)
        return
    will_retry = outcome == RunOutcome.RETRY
    logger.error(
        "task failed id=%s name=%s attempt=%s will_retry=%s error=%s",
        row.pk,
        row.func_name,
        row.attempt,
        will_retry,
        row.error,
        exc_info=exc,
    )
    signals.send(signals.task_failed, task=row, exception=exc, will_retry=will_retry)


def retry_delay(row: TaskModel) -> datetime.timedelta:
    """Delay before the next retry: fixed, or doubling per retry with ``retry_backoff``."""
    seconds = row.retry_delay
    if row.retry_backoff:
        seconds = min(seconds * 2**row.retry_attempts, settings.RETRY_BACKOFF_MAX)
    return datetime.timedelta(seconds=seconds)


def attempt_row(
    row: TaskModel,
    worker: WorkerModel | None,
    outcome: str,
    finished: datetime.datetime,
    *,
    error: str = "",
    tb: str = "",
) -> TaskAttempt:
    return TaskAttempt(
        task_id=row.pk,
        number=row.attempt,
        worker=worker,
        worker_name=worker.name if worker else "",
        started=row.started,
        finished=finished,
        outcome=outcome,
        error=error,
        traceback=tb,
    )


def run_immediately(row: TaskModel) -> RunOutcome:
    """Run a just-scheduled row inline (``FIREFLY_RUN_IMMEDIATELY``), recording its attempt."""
    now = timezone.now()
    TaskModel.objects.filter(pk=row.pk, status=TaskStatus.CREATED).update(
        status=TaskStatus.RUNNING, attempt=F("attempt") + 1, started=now
    )
    row.refresh_from_db()
    outcome = execute(row)
    row.refresh_from_db()
    return outcome
