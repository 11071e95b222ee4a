"""``consume_tasks --pool process``: each of the consumer's slots runs its tasks in a child.

The parent claims, beats and supervises as with threads; each slot's thread hands its claimed
batch to its child (``firefly_tasks.pool_child``) and waits for the reply. The child runs the
batch on its own connection, and commits each task's writes with its completion as a thread
would. The parent reads the child's board (``firefly_tasks.board``): past a task's timeout the
child stopped it itself (SIGALRM); ``FIREFLY_TIMEOUT_GRACE`` later the parent kills the child
(SIGKILL), records the attempt ``timed_out`` and starts another child. A cancel is SIGUSR1, then
the same kill. A child that dies on its own (a segfault, the OOM killer) charges only the task
it was running, ``lost``; tasks of its batch that ran before it in an uncommitted group commit
run again ``interrupted``, uncharged, and those not started go back to the queue.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from django.db import DatabaseError

from firefly_tasks import database
from firefly_tasks.batches import BatchInterrupted
from firefly_tasks.board import SIZE, Board
from firefly_tasks.conf import settings
from firefly_tasks.liveness import SharedLiveness
from firefly_tasks.models import TaskModel, WorkerModel
from firefly_tasks.pool_child import ChildOptions, main
from firefly_tasks.states import AttemptOutcome, RunOutcome

logger = logging.getLogger("firefly_tasks")

# How long a child has to exit once told to (between batches), before it is killed.
CHILD_EXIT_SECONDS = 10.0
# Between two children that die before running a task (a broken import, say): doubling, capped.
RESTART_FIRST_DELAY = 0.1
RESTART_MAX_DELAY = 5.0


class ProcessPool:
    """The children of one consumer, one per slot, each started when its slot first needs it
    and again after it died or retired."""

    def __init__(
        self, *, max_tasks_per_child: int | None = None, max_memory_per_child: int | None = None
    ) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child
        self.liveness_cells = self.context.Array("d", 2, lock=False)
        self.children: list[Child] = []
        self._lock = threading.Lock()
        # Before multiprocessing's own exit handler (atexit runs the last registered first),
        # which would wait for children that ignore its SIGTERM and die only with this process.
        atexit.register(self.kill_all)

    def liveness(self) -> SharedLiveness:
        return SharedLiveness.fresh(self.liveness_cells)

    def runner(self, worker: WorkerModel, slot: int) -> Child:
        child = Child(self, worker, slot)
        with self._lock:
            self.children.append(child)
        return child

    def snapshot(self) -> list[dict[str, Any]]:
        """Each slot's child now: slot, pid, resident memory (KiB) and task (for the
        heartbeat; pid ``None`` while the slot has none)."""
        with self._lock:
            children = list(self.children)
        return [child.snapshot() for child in sorted(children, key=lambda c: c.slot)]

    def supervise(self) -> None:
        """Kill the children whose task ran past its timeout, or a cancel, and the grace."""
        with self._lock:
            children = list(self.children)
        for child in children:
            child.supervise(settings.TIMEOUT_GRACE)

    def kill_all(self) -> None:
        """The consumer exits at once: kill every child (their tasks are put back by it)."""
        with self._lock:
            children = list(self.children)
        for child in children:
            child.kill("interrupted")


class Child:
    """One slot's child, as its slot's thread sees it: the runner interface of
    :class:`~firefly_tasks.batches.BatchRunner` that the worker uses."""

    def __init__(self, pool: ProcessPool, worker: WorkerModel, slot: int) -> None:
        self.pool = pool
        self.worker = worker
        self.slot = slot
        self.thread = threading.get_ident()
        self.session: int | None = None  # never fenced: a child is killed instead
        self.fenced = False
        self.dropped: set[int] = set()
        self.board = Board(pool.context.Array("d", SIZE, lock=False))
        self.board.clear()
        self.process: Any = None
        self.conn: Connection | None = None
        self.pids: list[int] = []
        self._size = 1
        self._ran = 0  # tasks the current child started, as it reported them
        self._restart_delay = RESTART_FIRST_DELAY
        self._rows: dict[int, TaskModel] = {}
        self._batch: list[TaskModel] = []
        self._killed: tuple[str, tuple[int, int] | None] | None = None
        self._cancel_told: tuple[tuple[int, int], float] | None = None

    # The runner interface ----------------------------------------------------------------------

    def batch_size(self) -> int:
        size = self._size
        limit = self.pool.max_tasks_per_child
        if limit is not None:
            size = min(size, max(1, limit - self._ran))
        return max(1, size)

    @property
    def executing(self) -> tuple[TaskModel, datetime.datetime] | None:
        now = self.board.executing()
        row = None if now is None else self._rows.get(now[0])
        if row is None or now is None or row.attempt != now[1]:
            return None
        started = datetime.datetime.fromtimestamp(self.board.started, tz=datetime.UTC)
        return row, started

    def snapshot(self) -> dict[str, Any]:
        process, executing = self.process, self.board.executing()
        pid = None if process is None else process.pid
        return {
            "slot": self.slot,
            "pid": pid,
            "memory_kib": None if pid is None else resident_kib(pid),
            "task": None if executing is None else executing[0],
        }

    def drop(self, row: TaskModel) -> None:
        """A task of the batch was cancelled: the child must not start it (SIGUSR1)."""
        process, pk = self.process, row.pk
        if process is None or pk not in self._rows or pk in self.dropped:
            return
        self.dropped.add(pk)
        self.board.drop(pk)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGUSR1)

    def interrupt(self, token: tuple[int, int]) -> bool:
        """Cancel the task ``token`` if the child executes it: SIGUSR1, the kill after the
        grace."""
        if self.process is None or self.board.executing() != token:
            return False
        self.board.set(cancel_pk=token[0], cancel_attempt=token[1])
        self._cancel_told = (token, time.monotonic())
        os.kill(self.process.pid, signal.SIGUSR1)
        return True

    def run(
        self, rows: list[TaskModel], revivals: int | None = None
    ) -> tuple[list[RunOutcome], list[TaskModel]]:
        self._start()
        assert self.conn is not None
        self._batch, self._rows = rows, {row.pk: row for row in rows}
        self._killed = self._cancel_told = None
        self.dropped = set()
        try:
            self.conn.send((rows, revivals))
            reply, self._size, retiring = self.conn.recv()
        except (EOFError, OSError):
            return self._died()
        kind, first, second = reply
        self._ran = int(self.board.ran)
        if retiring:
            self.close()
        if kind == "lost":
            started, unstarted = [self._rows[pk] for pk in first], [self._rows[pk] for pk in second]
            raise BatchInterrupted(started, unstarted)
        return list(first), [self._rows[pk] for pk in second]

    def supervise(self, grace: float) -> None:
        if self.process is None or self._killed is not None:
            return
        executing = self.board.executing()
        deadline = self.board.deadline
        if executing is None or executing != self.board.executing():
            return
        now = time.monotonic()
        if now > deadline + grace:
            self.kill("timed out", executing)
        elif (
            self._cancel_told is not None
            and self._cancel_told[0] == executing
            and now > self._cancel_told[1] + grace
        ):
            self.kill("cancelled", executing)

    def kill(self, why: str, target: tuple[int, int] | None = None) -> None:
        process = self.process
        if process is None:
            return
        self._killed = (why, target)
        if target is not None:
            logger.error(
                "killing pool child pid=%s task_id=%s: %s and it did not stop within %.3g s",
                process.pid,
                target[0],
                why,
                settings.TIMEOUT_GRACE,
            )
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)

    def close(self) -> None:
        """The child exits (between batches); a new one starts when the slot needs one."""
        process, conn = self.process, self.conn
        if process is None or conn is None:
            return
        self.process = self.conn = None
        with contextlib.suppress(OSError):
            conn.send(None)
        process.join(CHILD_EXIT_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
        conn.close()

    # Starting and losing a child ---------------------------------------------------------------

    def _start(self) -> None:
        if self.process is not None:
            return
        pool = self.pool
        options = ChildOptions(
            worker_id=self.worker.pk,
            slot=self.slot,
            max_tasks=pool.max_tasks_per_child,
            max_memory_kib=pool.max_memory_per_child,
        )
        self.board.clear()
        self.board.set(ran=0)
        ours, theirs = pool.context.Pipe()
        process = pool.context.Process(
            target=main,
            args=(theirs, self.board.cells, pool.liveness_cells, options),
            name=f"firefly-child-{self.slot}",
            daemon=True,
        )
        process.start()
        theirs.close()
        self.process, self.conn, self._ran = process, ours, 0
        self.pids.append(process.pid or 0)
        logger.info("pool child started pid=%s slot=%s", process.pid, self.slot)

    def _died(self) -> tuple[list[RunOutcome], list[TaskModel]]:
        """The child died during the batch: settle its tasks by what its board says."""
        process, conn = self.process, self.conn
        self.process = self.conn = None
        process.join(CHILD_EXIT_SECONDS)
        if process.is_alive():  # its pipe broke, but it runs on: end it
            process.kill()
            process.join()
        if conn is not None:
            conn.close()
        rows, killed = self._batch, self._killed
        executing, position = self.board.executing(), int(self.board.position)
        row = None if executing is None else self._rows.get(executing[0])
        if row is not None and row.attempt != executing[1]:  # type: ignore[index]
            row = None
        ran_before = rows[: max(position, 0)] if row is not None else rows[: position + 1]
        unstarted = rows[position + 1 :]
        why = killed[0] if killed is not None else _describe_exit(process.exitcode)
        if killed is None and self.board.ran == 0:
            # It died before running anything: not a task's doing. Do not spin starting more.
            logger.error(
                "pool child pid=%s died before running a task (%s); starting another in %.1fs",
                process.pid,
                why,
                self._restart_delay,
            )
            time.sleep(self._restart_delay)
            self._restart_delay = min(self._restart_delay * 2, RESTART_MAX_DELAY)
            return [], rows
        self._restart_delay = RESTART_FIRST_DELAY
        if killed is None or killed[0] != "interrupted":
            logger.error(
                "pool child died pid=%s (%s) task_id=%s; starting another",
                process.pid,
                why,
                row.pk if row is not None else None,
            )
        try:
            outcomes = self._settle(row, killed, process.exitcode)
            for earlier in ran_before:
                TaskModel.objects.recover(earlier, self.worker, AttemptOutcome.INTERRUPTED)
        except DatabaseError as exc:
            started = ran_before + ([row] if row is not None else [])
            raise BatchInterrupted(started, unstarted) from exc
        return outcomes, unstarted

    def _settle(
        self,
        row: TaskModel | None,
        killed: tuple[str, tuple[int, int] | None] | None,
        exitcode: int | None,
    ) -> list[RunOutcome]:
        if row is None:
            return []
        worker = self.worker
        if killed is not None and killed[1] != (row.pk, row.attempt):
            killed = ("interrupted", None)  # killed for the task before, which ended since
        if killed is not None and killed[0] == "cancelled":
            return [RunOutcome.CANCELLED]  # its canceller recorded it
        if killed is not None and killed[0] == "interrupted":
            TaskModel.objects.recover(row, worker, AttemptOutcome.INTERRUPTED)
            return []
        if killed is not None and killed[0] == "timed out":
            seconds = row.timeout
            error = (
                f"TaskTimeout: the attempt ran past its timeout of {seconds:g} s and did not "
                f"stop within FIREFLY_TIMEOUT_GRACE ({settings.TIMEOUT_GRACE:g} s): its pool "
                "child was killed"
            )
            with database.atomic():
                return [
                    TaskModel.objects.fail_or_retry(
                        row, worker, error, "", retryable=True, outcome=AttemptOutcome.TIMED_OUT
                    )
                ]
        error = (
            f"LostTask: the pool child running it died ({_describe_exit(exitcode)}); "
            "the task may have crashed it"
        )
        TaskModel.objects.recover(row, worker, AttemptOutcome.LOST, error=error, charge=True)
        return [RunOutcome.FAILED]


def resident_kib(pid: int) -> int | None:
    """The resident memory of process ``pid`` in KiB (Linux's /proc), or None."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
