"""Running a claimed batch: fast tasks share one commit, everything else runs alone.

A durable commit costs about as much as a no-op task many times over, so consecutive fast
tasks run in one *group* transaction: each task's writes sit behind a savepoint (created
lazily, only if the task touches the database), and the group's completions are written in
one statement and committed together, within ``FIREFLY_GROUP_COMMIT_WINDOW``. A task is
"fast" once this thread has seen it finish in under a fifth of that window; unknown and slow
tasks run alone, so a group is always committed before them. Either way a task runs through
``firefly_tasks.execution``'s one path.

If a group's transaction fails (a deadlock, a lost connection, a row taken over), none of its
writes commit and its tasks go back to the queue, to run under new attempts.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import DatabaseError
from django.utils import timezone

from firefly_tasks import database, signals
from firefly_tasks.conf import settings
from firefly_tasks.deadlines import cancel_async, watchdog
from firefly_tasks.dialects import Dialect, dialect
from firefly_tasks.exceptions import TaskCancelled, TaskTimeout
from firefly_tasks.execution import (
    ConnectionLost,
    announce_failure,
    invoke,
    prepare,
    run_alone,
    write_failure,
)
from firefly_tasks.isolation import IsolationLock
from firefly_tasks.liveness import Liveness
from firefly_tasks.models import TaskModel, WorkerModel
from firefly_tasks.registry import registry
from firefly_tasks.rollups import Tally
from firefly_tasks.rows import Completion
from firefly_tasks.savepoints import Savepoints
from firefly_tasks.states import AttemptOutcome, RunOutcome, TaskStatus

logger = logging.getLogger("firefly_tasks")

# Weight of the newest observation in the moving averages of task durations.
SMOOTHING = 0.2
# A task that ran longer than this hands the rest of its batch back, for others to run.
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


class _Interrupted(Exception):
    """The connection broke after ``started`` rows of a run began."""

    def __init__(self, started: int) -> None:
        super().__init__(started)
        self.started = started


class _GroupFenced(Exception):
    """A row of the group moved on to another attempt: roll the group back."""


@dataclass
class _Group:
    done: list[Completion] = field(default_factory=list)
    failed: list[tuple[TaskModel, BaseException, RunOutcome]] = field(default_factory=list)
    started: int = 0  # rows whose run began
    tally: Tally = field(default_factory=Tally)  # the failures, for the rollups

    def __len__(self) -> int:
        return len(self.done) + len(self.failed)


class _Run:
    """What one call of :meth:`BatchRunner.run` reads once (settings are read once a batch:
    this is the hot path) and learns as it goes."""

    def __init__(self, revivals: int | None, rows: list[TaskModel]) -> None:
        self.claimed = {row.started for row in rows}  # the stamps of the batch's claims
        self.window = settings.GROUP_COMMIT_WINDOW
        self.aliases = settings.TASK_ALIASES
        self.preview_length = settings.PREVIEW_LENGTH
        self.fresh_for = settings.WORKER_TIMEOUT - settings.HEARTBEAT_INTERVAL
        self.revivals = revivals
        # The queue's connection (claims, completions) and those a task's writes may go to.
        self.dialect = dialect(database.queue_connection())
        self.own = database.task_dialect() if database.separate() else self.dialect
        self.writers: tuple[Dialect, ...] = (self.dialect,)
        if self.own is None:  # a database Firefly cannot open savepoints on: no groups
            self.window = 0.0
        elif self.own is not self.dialect:
            self.writers = (self.own, self.dialect)
        # timezone.now() reads USE_TZ at each call; this clock reads the same time zone.
        self.clock: Callable[[], datetime.datetime] = functools.partial(
            datetime.datetime.now, timezone.now().tzinfo
        )
        self.last_was_slow = False


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
        # The task this thread executes now, and since when (None between tasks): what the
        # heartbeat reports, so the dashboard tells executing tasks from merely claimed ones.
        self.executing: tuple[TaskModel, datetime.datetime] | None = None
        # Its thread, its database session, whether it was fenced in a task (firefly_tasks.fence:
        # it hands the rest of its batch back) and which, under that fence's lock.
        self.thread, self.fenced, self.stuck_lock = threading.get_ident(), False, threading.Lock()
        self.session: int | None = None
        self.stuck_in: TaskModel | None = None
        self.dropped: set[tuple[int, int]] = set()  # claimed attempts cancelled: not to start

    def drop(self, row: TaskModel) -> None:
        """A task of the batch (or of the next, claimed ahead) was cancelled: don't start it."""
        self.dropped.add((row.pk, row.attempt))

    def interrupt(self, token: tuple[int, int]) -> bool:
        """Cancel the body ``token`` if this runner's thread executes it."""
        return watchdog.interrupt(self.thread, token) or cancel_async(token)

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
        before the claim. Raises :class:`BatchInterrupted` when the connection breaks.
        """
        run = _Run(revivals, rows)
        self.session, self.fenced = run.dialect.session_id(), False
        self.dropped.intersection_update({(r.pk, r.attempt) for r in rows})  # in place: drop()
        try:
            return self._run(rows, run)
        finally:
            self.executing = None
            if self.fenced:
                self._came_back()

    def _came_back(self) -> None:
        """This thread, fenced in a task, returned from it: the slots it kept are free."""
        with self.stuck_lock:
            row, self.stuck_in = self.stuck_in, None
        if row is not None and self.worker is not None:
            database.queue_connection().close()  # the fence ended its session
            with contextlib.suppress(DatabaseError):  # else maintenance frees them later
                TaskModel.objects.unstick(row, self.worker)

    def _run(self, rows: list[TaskModel], run: _Run) -> tuple[list[RunOutcome], list[TaskModel]]:
        outcomes: list[RunOutcome] = []
        not_run: list[TaskModel] = []
        index = 0
        while index < len(rows):
            if self.stopping.is_set() or self.fenced:
                return outcomes, not_run + rows[index:]
            if not self._holds_tasks(run):
                try:
                    kept, gone = self._still_held(run, rows[index:])
                except DatabaseError as exc:
                    raise BatchInterrupted([], rows[index:]) from exc
                rows = rows[:index] + kept
                not_run += gone
                if index == len(rows):
                    break
            row = rows[index]
            if (row.pk, row.attempt) in self.dropped:  # cancelled while it waited in the batch
                not_run.append(row)
                index += 1
                continue
            group = [] if row.isolation else self._fast_run(run, rows, index)
            try:
                if row.isolation:
                    ran = [self._run_isolated(run, row)]
                else:
                    with self.lock.shared() as waited:
                        if waited and not self._holds_tasks(run):
                            continue  # held back by a task run alone: check them again
                        alone = len(group) <= 1
                        ran = [self._run_alone(run, row)] if alone else self._run_group(run, group)
            except _Interrupted as exc:
                end = index + exc.started
                raise BatchInterrupted(rows[index:end], rows[end:]) from exc.__cause__
            except (ConnectionLost, DatabaseError) as exc:
                raise BatchInterrupted(rows[index : index + 1], rows[index + 1 :]) from exc
            outcomes += ran
            index += len(ran)
            if len(group) <= 1 and run.last_was_slow and index < len(rows):
                return outcomes, not_run + rows[index:]
        return outcomes, not_run

    # Holding the claimed tasks -------------------------------------------------------------

    def _holds_tasks(self, run: _Run) -> bool:
        """Whether no other consumer can have recovered this batch yet: see :class:`Liveness`."""
        liveness = self.liveness
        if liveness is None:
            return True
        if run.revivals is not None and liveness.revivals != run.revivals:
            return False
        return time.monotonic() - liveness.proved_at < run.fresh_for

    def _still_held(
        self, run: _Run, rows: list[TaskModel], *, rest_of_batch: bool = True
    ) -> tuple[list[TaskModel], list[TaskModel]]:
        """Beat (none can be lost after the check), then split ``rows`` into those still held and
        those lost: all, if the worker was declared dead (what it claimed since is an orphan's,
        to be recovered). Only a check of the rest of the batch clears the revivals for it."""
        assert self.liveness is not None and self.worker is not None
        revivals = self.liveness.revivals
        alive = self.liveness.beat(self.worker.pk)
        claims = TaskModel.objects.filter(
            pk__in=[row.pk for row in rows] if alive else [],
            status=TaskStatus.RUNNING,
            worker_id=self.worker.pk,
            started__in=run.claimed,  # not a claim of the same attempt made since
        )
        held = set(claims.values_list("pk", "attempt"))
        kept = [row for row in rows if (row.pk, row.attempt) in held]
        gone = [row for row in rows if (row.pk, row.attempt) not in held]
        if gone:
            logger.warning(
                "tasks taken over while this worker was silent, not run count=%s", len(gone)
            )
        if rest_of_batch:
            run.revivals = revivals
        return kept, gone

    def _run_isolated(self, run: _Run, row: TaskModel) -> RunOutcome:
        """Run a task recovered from a dead worker alone in this process, its start recorded
        first: a crash now is charged to it (see ``Isolation``)."""
        run.last_was_slow = False
        with self.lock.alone():
            if (
                not self._holds_tasks(run)
                and not self._still_held(run, [row], rest_of_batch=False)[0]
            ):
                return RunOutcome.FENCED
            if not TaskModel.objects.start_alone(row):
                return RunOutcome.FENCED
            return self._run_alone(run, row)

    # Grouping ------------------------------------------------------------------------------

    def _is_fast(self, run: _Run, row: TaskModel) -> bool:
        if run.window <= 0 or row.isolation:
            return False
        duration = self.durations.get(row.func_name)
        if duration is None or duration > run.window / 5:
            return False
        task = registry.get(run.aliases.get(row.func_name, row.func_name))
        return task is not None and not row.backend and task.atomic

    def _fast_run(self, run: _Run, rows: list[TaskModel], start: int) -> list[TaskModel]:
        fast = []
        for row in rows[start:]:
            if not self._is_fast(run, row):
                break
            fast.append(row)
        return fast

    def _observe(self, name: str, seconds: float) -> None:
        previous = self.durations.get(name)
        self.durations[name] = (
            seconds if previous is None else (previous + SMOOTHING * (seconds - previous))
        )
        mean = self.mean_duration
        self.mean_duration = seconds if mean is None else mean + SMOOTHING * (seconds - mean)

    def _run_alone(self, run: _Run, row: TaskModel) -> RunOutcome:
        row.run_seconds = None
        self.executing = (row, run.clock())
        began = time.monotonic()
        outcome = run_alone(row, self.worker, run.aliases)
        took = time.monotonic() - began
        # Learn from the function's own time, not the commit around it.
        self._observe(row.func_name, took if row.run_seconds is None else row.run_seconds)
        run.last_was_slow = took > SLOW_TASK_SECONDS
        return outcome

    def _run_group(self, run: _Run, rows: list[TaskModel]) -> list[RunOutcome]:
        """Run fast tasks in one transaction until the window closes; return their outcomes."""
        run.last_was_slow = False
        group = _Group()
        try:
            return self._commit_group(run, rows, group)
        except (ConnectionLost, DatabaseError) as exc:
            raise _Interrupted(max(group.started, 1)) from exc

    def _commit_group(self, run: _Run, rows: list[TaskModel], group: _Group) -> list[RunOutcome]:
        deadline = time.monotonic() + run.window
        try:
            with database.task_transaction(run.dialect, lazily=False):
                for row in rows:
                    if group and (
                        time.monotonic() > deadline or self.fenced or not self._holds_tasks(run)
                    ):
                        break
                    group.started += 1
                    self._run_in_group(run, row, group)
                completed = TaskModel.objects.complete(group.done, self.worker, group.tally)
                if completed != len(group.done):
                    raise _GroupFenced
        except (_GroupFenced, DatabaseError) as exc:
            # Nothing of the group committed: a row of it moved on, or the database refused it.
            if isinstance(exc, DatabaseError) and run.dialect.is_connection_error(exc):
                raise ConnectionLost(str(exc)) from exc
            logger.warning("group rolled back, putting %s task(s) back error=%r", len(group), exc)
            return self._put_back(run, rows[: len(group)])
        for done in group.done:
            signals.send(signals.task_completed, task=done.row, result=done.result)
        outcomes = [RunOutcome.COMPLETED] * len(group.done)
        for row, error, outcome in group.failed:
            announce_failure(row, error, outcome)
            outcomes.append(outcome)
        return outcomes

    def _put_back(self, run: _Run, ran: list[TaskModel]) -> list[RunOutcome]:
        """Requeue the tasks of a group that rolled back, each attempt spent (``interrupted``,
        uncharged: an attempt runs at most once); those that moved on meanwhile are fenced."""
        kept = ran if self.liveness is None else self._still_held(run, ran, rest_of_batch=False)[0]
        put_back = functools.partial(TaskModel.objects.recover, outcome=AttemptOutcome.INTERRUPTED)
        interrupted, fenced = RunOutcome.INTERRUPTED, RunOutcome.FENCED
        return [
            interrupted if row in kept and put_back(row, self.worker) else fenced for row in ran
        ]

    def _run_in_group(self, run: _Run, row: TaskModel, group: _Group) -> None:
        row.started = run.clock()
        self.executing = (row, row.started)
        try:
            call = prepare(row, run.aliases)
        except Exception as exc:
            # Retrying cannot fix a name or payload the consumer cannot read.
            outcome = write_failure(row, self.worker, exc, retry=False, tally=group.tally)
            group.failed.append((row, exc, outcome))
            return
        began = time.monotonic()
        with Savepoints(run.writers) as savepoints:
            try:
                done = invoke(
                    row, call, preview_length=run.preview_length, clock=run.clock, where=run.own
                )
                savepoints.release()
            except (Exception, TaskTimeout, TaskCancelled) as exc:
                if run.dialect.is_connection_error(exc):
                    raise ConnectionLost(str(exc)) from exc
                savepoints.rollback()
                outcome = write_failure(row, self.worker, exc, retry=True, tally=group.tally)
                group.failed.append((row, exc, outcome))
            else:
                group.done.append(done)
            finally:
                self._observe(row.func_name, time.monotonic() - began)
