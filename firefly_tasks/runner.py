"""Running a claimed batch: fast tasks share one commit, everything else runs alone.

A durable commit costs about as much as a no-op task many times over, so consecutive fast
tasks run in one *group* transaction: each task's writes sit behind a savepoint (created
lazily, only if the task touches the database), and the group's completions are written in
one statement and committed together, within ``FIREFLY_GROUP_COMMIT_WINDOW``. A task is
"fast" once this thread has seen it finish in under a fifth of that window; unknown and slow
tasks run alone, so a group is always committed before them.

If a group's transaction fails (a deadlock, a lost connection), none of its writes commit and
its tasks run again.
"""

from __future__ import annotations

import datetime
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.utils import timezone

from firefly_tasks import serialization, signals
from firefly_tasks.completion import Completion, write_completions
from firefly_tasks.conf import settings
from firefly_tasks.database import is_connection_error
from firefly_tasks.decorators import Task
from firefly_tasks.executor import (
    ConnectionLost,
    RunOutcome,
    announce_failure,
    call,
    current_task_var,
    execute,
    write_failure,
)
from firefly_tasks.isolation import IsolationLock
from firefly_tasks.liveness import Liveness
from firefly_tasks.models import Isolation, TaskModel, TaskStatus, WorkerModel
from firefly_tasks.registry import registry

logger = logging.getLogger("firefly_tasks")

# Weight of the newest observation in the moving averages of task durations.
SMOOTHING = 0.2
# A task that ran longer than this hands the rest of its batch back to the queue, so that
# other threads and consumers can run it instead of waiting behind a slow task.
SLOW_TASK_SECONDS = 0.5
# How much work (in seconds of task time) a thread claims at once.
BATCH_SECONDS = 0.05
# The most arguments one claim may bring back, counting each row at FIREFLY_MAX_PAYLOAD_BYTES
# (the largest schedule() accepts): 256 rows at the default 1 MiB, 16 at 16 MiB.
CLAIM_PAYLOAD_BUDGET = 256 * 1024 * 1024


class BatchInterrupted(Exception):
    """The connection broke while running a batch. ``started`` rows may or may not have
    committed; ``unstarted`` rows never ran."""

    def __init__(self, started: list[TaskModel], unstarted: list[TaskModel]) -> None:
        super().__init__(f"{len(started)} started, {len(unstarted)} not started")
        self.started = started
        self.unstarted = unstarted


class _GroupFenced(Exception):
    """A row of the group moved on to another attempt: roll the group back."""


@dataclass
class _Group:
    done: list[Completion] = field(default_factory=list)
    failed: list[tuple[TaskModel, BaseException, RunOutcome]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.done) + len(self.failed)


class LazySavepoint:
    """An execute wrapper that opens a savepoint before a task's first query, if any.

    Most fast tasks never query, so they pay nothing for the isolation from their group.
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.sid: str | None = None
        self._opening = False
        # on_commit callbacks the task registers before its first query are not tied to
        # the savepoint: remember where they start, to discard them on rollback.
        self._callbacks_mark = len(connection.run_on_commit)

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if self.sid is None and not self._opening:
            self._opening = True
            try:
                self.sid = self.connection.savepoint()
                if self.sid is not None:
                    # Known to Django, so on_commit callbacks registered after it are
                    # discarded if the task's writes are rolled back.
                    self.connection.savepoint_ids.append(self.sid)
            finally:
                self._opening = False
        return execute(sql, params, many, context)

    def release(self) -> None:
        if self.sid is None:
            return
        if self.connection.needs_rollback:
            raise transaction.TransactionManagementError(
                "The task swallowed a database error inside an atomic block; its writes are "
                "rolled back."
            )
        self.connection.savepoint_commit(self.sid)
        self.forget()

    def rollback(self) -> None:
        if self.sid is not None:
            self.connection.savepoint_rollback(self.sid)
            self.connection.needs_rollback = False
            self.forget()
        del self.connection.run_on_commit[self._callbacks_mark :]

    def forget(self) -> None:
        if self.sid in self.connection.savepoint_ids:
            self.connection.savepoint_ids.remove(self.sid)
        self.sid = None


class BatchRunner:
    """Runs the batches one worker thread claims, learning which tasks are fast."""

    def __init__(
        self,
        worker: WorkerModel | None,
        stopping: threading.Event,
        *,
        liveness: Liveness | None = None,
        lock: IsolationLock | None = None,
    ) -> None:
        self.worker = worker
        self.stopping = stopping
        self.liveness = liveness
        self.lock = lock or IsolationLock()
        self.durations: dict[str, float] = {}
        self.mean_duration: float | None = None

    def batch_size(self) -> int:
        """How many tasks to claim next: about ``BATCH_SECONDS`` of work, at least one, and
        never more rows than ``CLAIM_PAYLOAD_BUDGET`` holds at the largest payload."""
        limit = min(
            settings.CLAIM_BATCH_SIZE, max(1, CLAIM_PAYLOAD_BUDGET // settings.MAX_PAYLOAD_BYTES)
        )
        if self.mean_duration is None:
            return 1
        return max(1, min(limit, int(BATCH_SECONDS / max(self.mean_duration, 1e-6))))

    def run(
        self, rows: list[TaskModel], revivals: int | None = None
    ) -> tuple[list[RunOutcome], list[TaskModel]]:
        """Run ``rows`` in order; return the outcomes and the rows not run: handed back
        unstarted, or found to be no longer this worker's.

        ``revivals`` is the worker's :attr:`~firefly_tasks.liveness.Liveness.revivals`, read
        before the claim.
        Raises :class:`BatchInterrupted` when the connection breaks.
        """
        # Settings are read once a batch: this is the hot path.
        self._window = settings.GROUP_COMMIT_WINDOW
        self._aliases = settings.TASK_ALIASES
        self._preview_length = settings.PREVIEW_LENGTH
        self._fresh_for = settings.WORKER_TIMEOUT - settings.HEARTBEAT_INTERVAL
        self._revivals = revivals
        self._connection = connections[DEFAULT_DB_ALIAS]
        # timezone.now() reads USE_TZ at each call; this clock reads the same time zone.
        self._now = functools.partial(datetime.datetime.now, timezone.now().tzinfo)
        outcomes: list[RunOutcome] = []
        not_run: list[TaskModel] = []
        index = 0
        while index < len(rows):
            if self.stopping.is_set():
                return outcomes, not_run + rows[index:]
            if not self._holds_tasks():
                try:
                    kept, gone = self._still_held(rows[index:])
                except DatabaseError as exc:
                    raise BatchInterrupted([], rows[index:]) from exc
                rows = rows[:index] + kept
                not_run += gone
                if index == len(rows):
                    break
            row = rows[index]
            self._started = 1
            try:
                if row.isolation:
                    ran = [self._run_isolated(row)]
                    group: list[TaskModel] = []
                else:
                    group = self._fast_run(rows, index)
                    with self.lock.shared():
                        ran = self._run_group(group) if len(group) > 1 else [self._run_alone(row)]
            except (ConnectionLost, DatabaseError) as exc:
                end = index + self._started
                raise BatchInterrupted(rows[index:end], rows[end:]) from exc
            outcomes += ran
            index += len(ran)
            if len(group) <= 1 and self._last_was_slow and index < len(rows):
                return outcomes, not_run + rows[index:]
        return outcomes, not_run

    # Holding the claimed tasks -------------------------------------------------------------

    _fresh_for = 0.0
    _revivals: int | None = None

    def _holds_tasks(self) -> bool:
        """Whether no other consumer can have recovered this batch yet, by the monotonic
        clock alone (no query): see :class:`Liveness`."""
        liveness = self.liveness
        if liveness is None:
            return True
        if self._revivals is not None and liveness.revivals != self._revivals:
            return False
        return time.monotonic() - liveness.proved_at < self._fresh_for

    def _still_held(
        self, rows: list[TaskModel], *, rest_of_batch: bool = True
    ) -> tuple[list[TaskModel], list[TaskModel]]:
        """Beat, then split ``rows`` into those this worker still holds and those it lost,
        in one query (the heartbeat first, so that none can be lost after the check).

        Only a check of the whole rest of the batch (``rest_of_batch``) clears the worker's
        revivals for it: after a check of some rows, the others are checked before they run.
        """
        assert self.liveness is not None and self.worker is not None
        revivals = self.liveness.revivals
        self.liveness.beat(self.worker.pk)
        held = set(
            TaskModel.objects.filter(
                pk__in=[row.pk for row in rows],
                status=TaskStatus.RUNNING,
                worker_id=self.worker.pk,
            ).values_list("pk", "attempt")
        )
        kept = [row for row in rows if (row.pk, row.attempt) in held]
        gone = [row for row in rows if (row.pk, row.attempt) not in held]
        if gone:
            logger.warning(
                "tasks taken over while this worker was silent, not run count=%s", len(gone)
            )
        if rest_of_batch:
            self._revivals = revivals
        return kept, gone

    def _run_isolated(self, row: TaskModel) -> RunOutcome:
        """Run a task recovered from a dead worker alone in this process, its start recorded
        first: a crash now is charged to it (see ``Isolation``)."""
        self._last_was_slow = False
        with self.lock.alone():
            if not self._holds_tasks() and not self._still_held([row], rest_of_batch=False)[0]:
                return RunOutcome.FENCED
            started = TaskModel.objects.filter(
                pk=row.pk, status=TaskStatus.RUNNING, attempt=row.attempt
            ).update(isolation=Isolation.STARTED_ALONE)
            if not started:
                return RunOutcome.FENCED
            row.isolation = Isolation.STARTED_ALONE
            return self._run_alone(row)

    # Grouping ------------------------------------------------------------------------------

    _last_was_slow = False
    _window = 0.0
    _aliases: dict[str, str] = {}
    _preview_length = 200
    _connection: Any = None
    _now: Callable[[], datetime.datetime] = staticmethod(timezone.now)
    _started = 0  # rows of the current group or single run that have started

    def _is_fast(self, row: TaskModel) -> bool:
        window = self._window
        if window <= 0 or row.isolation:
            return False
        duration = self.durations.get(row.func_name)
        if duration is None or duration > window / 5:
            return False
        task = registry.get(self._aliases.get(row.func_name, row.func_name))
        return isinstance(task, Task) and task.atomic

    def _fast_run(self, rows: list[TaskModel], start: int) -> list[TaskModel]:
        run = []
        for row in rows[start:]:
            if not self._is_fast(row):
                break
            run.append(row)
        return run

    def _observe(self, name: str, seconds: float) -> None:
        previous = self.durations.get(name)
        self.durations[name] = (
            seconds if previous is None else (previous + SMOOTHING * (seconds - previous))
        )
        mean = self.mean_duration
        self.mean_duration = seconds if mean is None else mean + SMOOTHING * (seconds - mean)

    def _run_alone(self, row: TaskModel) -> RunOutcome:
        row.run_seconds = None
        began = time.monotonic()
        outcome = execute(row, self.worker)
        took = time.monotonic() - began
        # Learn from the function's own time, not the commit around it.
        self._observe(row.func_name, took if row.run_seconds is None else row.run_seconds)
        self._last_was_slow = took > SLOW_TASK_SECONDS
        return outcome

    def _run_group(self, rows: list[TaskModel]) -> list[RunOutcome]:
        """Run fast tasks in one transaction until the window closes; return their outcomes."""
        self._last_was_slow = False
        deadline = time.monotonic() + self._window
        group = _Group()
        try:
            with transaction.atomic():
                for row in rows:
                    if group and (time.monotonic() > deadline or not self._holds_tasks()):
                        break
                    self._started = len(group) + 1
                    self._run_in_group(row, group)
                if write_completions(group.done, self.worker, self._preview_length) != len(
                    group.done
                ):
                    raise _GroupFenced
        except _GroupFenced:
            # Some row is no longer ours: nothing of the group committed. Run each task alone,
            # where fencing is decided row by row.
            ran = rows[: len(group)]
            if self.liveness is None:
                held = set(ran)
            else:
                held = set(self._still_held(ran, rest_of_batch=False)[0])
            logger.info("group rolled back: a task moved on; running %s alone", len(held))
            return [self._run_alone(row) if row in held else RunOutcome.FENCED for row in ran]
        except DatabaseError as exc:
            if is_connection_error(exc):
                raise ConnectionLost(str(exc)) from exc
            logger.warning(
                "group commit failed, running %s task(s) again error=%s", len(group), exc
            )
            return [self._run_alone(row) for row in rows[: len(group)]]
        for done in group.done:
            signals.send(signals.task_completed, task=done.row, result=done.result)
        outcomes = [RunOutcome.COMPLETED] * len(group.done)
        for row, error, outcome in group.failed:
            announce_failure(row, error, outcome)
            outcomes.append(outcome)
        return outcomes

    def _run_in_group(self, row: TaskModel, group: _Group) -> None:
        try:
            task = registry.resolve(row.func_name, backend=row.backend, aliases=self._aliases)
            args, kwargs = serialization.loads(row.params_data, row.serializer)
        except Exception as exc:
            # Retrying cannot fix a name or payload the consumer cannot read.
            group.failed.append((row, exc, write_failure(row, self.worker, exc, retry=False)))
            return
        row.started = self._now()
        signals.send(signals.task_started, task=row)
        conn = self._connection
        savepoint = LazySavepoint(conn)
        token = current_task_var.set(row)
        began = time.monotonic()
        # As connection.execute_wrapper() does, without a generator per task.
        conn.execute_wrappers.append(savepoint)
        try:
            result = call(task, args, kwargs, row)
            returned_data = serialization.dumps(result, row.serializer, what="the return value")
            savepoint.release()
        except Exception as exc:
            if is_connection_error(exc):
                raise ConnectionLost(str(exc)) from exc
            savepoint.rollback()
            group.failed.append((row, exc, write_failure(row, self.worker, exc, retry=True)))
        else:
            group.done.append(Completion(row, result, returned_data, self._now()))
        finally:
            conn.execute_wrappers.pop()
            # On a lost connection the savepoint is gone with it; Django must not see its id
            # when the group's atomic block exits, or it would think it is still nested.
            savepoint.forget()
            current_task_var.reset(token)
            self._observe(row.func_name, time.monotonic() - began)
