"""Fencing a task thread that ran past its timeout and did not stop.

``TaskTimeout`` reaches a thread only when it runs Python code (see ``deadlines``). A thread
blocked in C (a socket read with no timeout, ``time.sleep``) keeps running: once it is
``FIREFLY_TIMEOUT_GRACE`` seconds past its deadline, the consumer's main thread *fences* it.
The thread's database session is ended (PostgreSQL ``pg_terminate_backend``, MariaDB ``KILL
CONNECTION``): its transaction rolls back and its locks go. Its attempt is recorded
``timed_out`` (retried like a failure), the rest of its batch goes back to the queue, and the
thread takes no more of it if it ever returns. Its slot stays taken while it is stuck (its
consumer's, and those of the task's concurrency key and queue, with its unique key: a
``StuckTask`` row, deleted when the thread returns); when too many are, the consumer exits with
:data:`EXIT_STUCK`, for its process manager to start a fresh one. On SQLite a session cannot be
ended, and a stuck writer holds the only write lock: the consumer exits at the first stuck
thread.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from django.db import Error, connections

from firefly_tasks import database
from firefly_tasks.batches import BatchRunner
from firefly_tasks.conf import settings
from firefly_tasks.deadlines import Deadline, watchdog
from firefly_tasks.dialects import dialect
from firefly_tasks.exceptions import TaskCancelled
from firefly_tasks.models import TaskModel, WorkerModel
from firefly_tasks.states import AttemptOutcome

if TYPE_CHECKING:
    from firefly_tasks.pool import Child

logger = logging.getLogger("firefly_tasks")

EXIT_STUCK = 3
"""``consume_tasks``'s exit status when task threads are stuck (docs/consumer.md)."""


class FenceOwner(Protocol):
    """What a fence reads of its consumer (:class:`~firefly_tasks.worker.Worker`)."""

    row: WorkerModel | None
    concurrency: int

    def held_by(self, thread: int) -> tuple[BatchRunner | Child, list[TaskModel]] | None: ...


class Fence:
    def __init__(self, worker: FenceOwner) -> None:
        self.worker = worker
        self.unended = False  # a fenced thread's session could not be ended

    def check(self) -> bool:
        """Fence the task threads newly overdue; whether the consumer must now exit: a thread
        fenced at an earlier check (the consumer's main thread checks every second or so) that
        still runs is stuck, and more than half its threads stuck, or any on SQLite, is too
        many. A thread blocked on its database session returns once the session is ended."""
        stuck = [t for t in watchdog.stuck() if self.worker.held_by(t) is not None]
        for deadline in watchdog.overdue(settings.TIMEOUT_GRACE):
            held = self.worker.held_by(deadline.thread)
            if held is not None and isinstance(held[0], BatchRunner):  # a task thread of ours
                # Marked first, then its rows read again: a claim it sent ahead that lands from
                # now on goes back by itself (firefly_tasks.claims).
                held[0].fenced = True
                self._fence(deadline, held[0], (self.worker.held_by(deadline.thread) or held)[1])
        if not (self.unended or 2 * len(stuck) > self.worker.concurrency):
            return False
        stuck = stuck or [t for t in watchdog.stuck() if self.worker.held_by(t) is not None]
        logger.critical(
            "consumer exiting status=%s: %s of %s task threads are stuck in tasks past their "
            "timeout; its process manager should start it again",
            EXIT_STUCK,
            len(stuck),
            self.worker.concurrency,
        )
        return True

    def _fence(self, deadline: Deadline, runner: BatchRunner, rows: list[TaskModel]) -> None:
        """End the session of ``runner``'s thread (fenced: if it returns, it hands the rest of
        its batch back) and settle the ``rows`` it holds."""
        executing = runner.executing
        grace = settings.TIMEOUT_GRACE
        why = (
            "it was cancelled"
            if deadline.raised is TaskCancelled
            else f"the attempt ran past its timeout of {deadline.seconds:g} s"
        )
        logger.error(
            "task thread stuck task_id=%s: %s and it did not stop within %.3g s (blocked "
            "outside Python code?); fencing it",
            executing[0].pk if executing else None,
            why,
            grace,
        )
        try:
            # Taken before the session ends: that wakes the thread, whose return waits for the
            # settling (else it finds its connection lost and puts its task back first, as
            # interrupted, to run again), then lets go of what the settling kept.
            with runner.stuck_lock:
                if runner.session is None:
                    self.unended = True
                else:
                    dialect(database.queue_connection()).end_session(runner.session)
                if executing is not None:
                    error = (
                        f"TaskTimeout: {why} and did not stop within FIREFLY_TIMEOUT_GRACE "
                        f"({grace:g} s): its thread was fenced"
                    )
                    self._settle(executing[0], rows, error)
                    runner.stuck_in = executing[0]
        except Error as exc:
            logger.warning("could not fence the stuck task error=%s", exc)
            connections.close_all()

    def _settle(self, row: TaskModel, rows: list[TaskModel], error: str) -> None:
        """Record the stuck attempt ``timed_out`` (a cancelled one was recorded by its
        canceller), and put the rest of its batch back: what ran before it in an uncommitted
        group ``interrupted``, what had not started released. Every step is fenced by the rows'
        attempt, so what did commit is left alone."""
        worker = self.worker.row
        with database.atomic():
            if worker is not None:  # its slots and unique key stay taken while it is stuck
                TaskModel.objects.stick(row, worker)
            TaskModel.objects.fail_or_retry(
                row, worker, error, "", retryable=True, outcome=AttemptOutcome.TIMED_OUT
            )
        index = next((i for i, r in enumerate(rows) if r.pk == row.pk), len(rows))
        for earlier in rows[:index]:
            TaskModel.objects.recover(earlier, worker, AttemptOutcome.INTERRUPTED)
        TaskModel.objects.release(rows[index + 1 :])
