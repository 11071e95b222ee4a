"""Running a claimed task: the one path every task takes, alone or in a group commit.

:func:`prepare` finds the task and reads its arguments, :func:`invoke` calls it in its context
and serializes what it returned, and the outcome is recorded by the task queryset's
transitions. :func:`run_alone` puts them together for a task with a transaction of its own;
``firefly_tasks.batches`` does the same for fast tasks that share one commit.
"""

from __future__ import annotations

import datetime
import logging
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from django.utils import timezone

from firefly_tasks import (
    database,
    deadlines,
    progress,
    results,
    serialization,
    signals,
    tracing,
)
from firefly_tasks.conf import settings
from firefly_tasks.context import RunningTask, current_task_var
from firefly_tasks.dialects import Dialect, dialect
from firefly_tasks.exceptions import Snooze, TaskCancelled, TaskTimeout
from firefly_tasks.models import TaskModel
from firefly_tasks.query_limit import QueryLimit
from firefly_tasks.registry import RegisteredTask, registry
from firefly_tasks.rollups import Tally
from firefly_tasks.rows import Completion
from firefly_tasks.states import AttemptOutcome, RunOutcome

if TYPE_CHECKING:
    from firefly_tasks.models import WorkerModel

logger = logging.getLogger("firefly_tasks")


class Fenced(Exception):
    """The row is no longer ours: another attempt owns it. Rolls back the task's writes."""


class ConnectionLost(Exception):
    """The database connection broke while a task ran: the task did not fail, the
    infrastructure did. The consumer reconnects and returns the task to the queue."""


Call = tuple[RegisteredTask, list[Any], dict[str, Any]]


def prepare(row: TaskModel, aliases: dict[str, str] | None = None) -> Call:
    """The task a row names and the arguments it stores, then the ``task_started`` signal
    (outside the task's transaction). Raises if the consumer cannot run it: retrying cannot
    fix a name or a payload this process cannot read."""
    task = registry.resolve(row.func_name, backend=row.backend, aliases=aliases)
    args, kwargs = serialization.loads(row.params_data, row.serializer)
    receives, value = results.received(row)
    if receives:  # what the tasks it waited for gave it (a chain, a group's callback)
        args = [value, *args]
    signals.send(signals.task_started, task=row)
    return task, args, kwargs


def invoke(
    row: TaskModel,
    call: Call,
    *,
    preview_length: int,
    clock: Callable[[], datetime.datetime] = timezone.now,
    where: Dialect | None = None,
) -> Completion:
    """Call the task in its context (``current_task()``) and serialize what it returned.
    The function's own running time is kept in ``row.run_seconds``. Raises what the task
    raised, or what serializing its result did. ``where`` is this thread's connection's
    dialect, if the caller has it (looking it up costs more than a no-op task)."""
    task, args, kwargs = call
    token = current_task_var.set(RunningTask(row))
    timeout = row.timeout
    began = time.monotonic()
    try:
        with tracing.span(row):
            if task.is_async:
                # In this thread: the coroutine's sync_to_async ORM calls come back to this
                # thread, so they share its connection and its atomic block.
                func = deadlines.bounded(task.func, timeout, (row.pk, row.attempt))
                result = async_to_sync(func)(*args, **kwargs)
            else:
                # Armed with or without a timeout: a cancel stops it either way.
                body = (row.pk, row.attempt)
                if timeout is None:
                    result = deadlines.call(task.func, args, kwargs, None, body)
                else:
                    where = where or database.task_dialect()
                    result = _bounded_call(task.func, args, kwargs, (timeout, body), where)
    finally:
        row.run_seconds = time.monotonic() - began
        current_task_var.reset(token)
        progress.release()
    returned = serialization.dumps(result, row.serializer, what="the return value")
    preview = serialization.value_preview(result, preview_length)
    return Completion(row, result, returned, preview, clock())


def _bounded_call(
    func: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    limit: tuple[float, Any],
    where: Dialect | None,
) -> Any:
    """The body, its thread interrupted past its timeout (``limit``: the timeout, and the
    body's token) or on a cancel, and its queries (on ``where``, its own database's dialect)
    bounded by what is left of the timeout."""
    timeout, body = limit
    if where is None:  # a database Firefly does not speak: its thread is interrupted alone
        return deadlines.call(func, args, kwargs, timeout, body)
    queries = QueryLimit(where.connection, where, timeout)
    where.push_execute_wrapper(queries)
    try:
        result = deadlines.call(func, args, kwargs, timeout, body)
    except Exception as exc:
        if queries.stopped(exc):  # the database was quicker than the watchdog
            raise TaskTimeout(deadlines.ran_past(timeout)) from exc
        raise
    finally:
        where.pop_execute_wrapper()
    queries.lift()
    return result


def run_alone(
    row: TaskModel, worker: WorkerModel | None = None, aliases: dict[str, str] | None = None
) -> RunOutcome:
    """Run a claimed task in a transaction of its own (an atomic task's writes commit with
    its completion, fenced by its attempt); return what it came to."""
    row.started = timezone.now()  # the attempt's start (the row holds the claim's)
    try:
        call = prepare(row, aliases)
    except Exception as exc:
        return record_failure(row, worker, exc, retry=False)
    atomic = call[0].atomic
    began = time.monotonic()
    try:
        if atomic:
            queue = dialect(database.queue_connection())
            with database.task_transaction(queue, lazily=True):
                done = invoke(row, call, preview_length=settings.PREVIEW_LENGTH)
                _complete(done, worker)
        else:
            done = invoke(row, call, preview_length=settings.PREVIEW_LENGTH)
            with database.atomic():
                _complete(done, worker)
    except Fenced:
        logger.warning(
            "task fenced id=%s name=%s attempt=%s: a newer attempt owns it, %s",
            row.pk,
            row.func_name,
            row.attempt,
            # atomic=False: its writes committed as it made them (at-least-once).
            "writes rolled back" if atomic else "its writes (atomic=False) were kept",
        )
        return RunOutcome.FENCED
    except (TaskTimeout, TaskCancelled) as exc:
        return record_failure(row, worker, exc, retry=True)
    except Exception as exc:
        if dialect(database.queue_connection()).is_connection_error(exc):
            raise ConnectionLost(str(exc)) from exc
        return record_failure(row, worker, exc, retry=True)
    logger.info(
        "task completed id=%s name=%s attempt=%s duration=%.3fs",
        row.pk,
        row.func_name,
        row.attempt,
        time.monotonic() - began,
    )
    signals.send(signals.task_completed, task=row, result=done.result)
    return RunOutcome.COMPLETED


def _complete(done: Completion, worker: WorkerModel | None) -> None:
    if not TaskModel.objects.complete([done], worker):
        raise Fenced


def record_failure(
    row: TaskModel, worker: WorkerModel | None, exc: BaseException, *, retry: bool
) -> RunOutcome:
    """Record a failure in a transaction of its own, then announce it."""
    with database.atomic():
        outcome = write_failure(row, worker, exc, retry=retry)
    announce_failure(row, exc, outcome)
    return outcome


def write_failure(
    row: TaskModel,
    worker: WorkerModel | None,
    exc: BaseException,
    *,
    retry: bool,
    tally: Tally | None = None,
) -> RunOutcome:
    """Record a failed attempt inside the caller's transaction (``timed_out`` for a
    :class:`TaskTimeout`); return the outcome. A group commit passes its ``tally``, written to
    the rollups with its completions."""
    if isinstance(exc, TaskCancelled):
        return RunOutcome.CANCELLED  # the canceller recorded it: the row is not ours any more
    if isinstance(exc, Snooze):
        return TaskModel.objects.snooze(row, worker, exc.seconds, tally=tally)
    tb = "".join(traceback.format_exception(exc))
    error = describe_error(exc)
    attempt = AttemptOutcome.TIMED_OUT if isinstance(exc, TaskTimeout) else AttemptOutcome.FAILED
    return TaskModel.objects.fail_or_retry(
        row, worker, error, tb, retryable=retry, tally=tally, outcome=attempt
    )


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) and "durable atomic block" in str(exc):
        return (
            "DurableAtomicError: the task opened transaction.atomic(durable=True), but a task "
            "runs inside the consumer's transaction so that its writes commit with its "
            "completion; use @task(atomic=False) for a task that needs its own durable "
            "transaction"
        )
    return f"{type(exc).__name__}: {exc}"


def announce_failure(row: TaskModel, exc: BaseException, outcome: RunOutcome) -> None:
    """Log and signal a failure once it has committed."""
    if outcome == RunOutcome.FENCED:
        logger.warning("task fenced id=%s attempt=%s: failure not recorded", row.pk, row.attempt)
        return
    if outcome == RunOutcome.CANCELLED:
        logger.warning("task stopped id=%s attempt=%s: cancelled while it ran", row.pk, row.attempt)
        return
    if outcome == RunOutcome.SNOOZED:
        logger.info("task snoozed id=%s attempt=%s: %s", row.pk, row.attempt, exc)
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


def run_immediately(row: TaskModel) -> RunOutcome:
    """Run a just-scheduled row in this process (``FIREFLY_RUN_IMMEDIATELY``), recording
    its attempt as a consumer would."""
    TaskModel.objects.claim_row(row)
    row.refresh_from_db()
    outcome = run_alone(row)
    row.refresh_from_db()
    return outcome
