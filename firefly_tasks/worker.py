"""The consumer: a process that claims ready tasks and runs them on its threads.

Each thread claims and runs tasks on its own database connection. A heartbeat thread reports
the worker alive and rescues the tasks of dead workers. The first SIGTERM/SIGINT stops
claiming and lets running tasks finish; a second one returns them to the queue at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Sequence
from types import FrameType
from typing import Any

from django.db import Error, connections

from firefly_tasks import __version__, states
from firefly_tasks.batches import BatchInterrupted, BatchRunner
from firefly_tasks.budget import Budget
from firefly_tasks.cancellation import stop_cancelled
from firefly_tasks.claims import Claims
from firefly_tasks.clock import DatabaseNow
from firefly_tasks.conf import settings
from firefly_tasks.database import queue_connection
from firefly_tasks.dialects import dialect
from firefly_tasks.fence import EXIT_STUCK, Fence
from firefly_tasks.heartbeat import Heartbeat
from firefly_tasks.isolation import IsolationLock
from firefly_tasks.leftovers import Leftovers
from firefly_tasks.listener import Listener
from firefly_tasks.liveness import Liveness
from firefly_tasks.models import TaskModel, WorkerModel
from firefly_tasks.pool import Child, ProcessPool
from firefly_tasks.rollups import use_slot
from firefly_tasks.scheduler import Scheduler
from firefly_tasks.states import AttemptOutcome, WorkerState

logger = logging.getLogger("firefly_tasks")

# Seconds between reconnection attempts while the database is unreachable: doubling, capped.
RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 5.0
# How long a second signal waits for the running tasks to be returned to the queue.
INTERRUPT_TIMEOUT = 5.0
# Longest the main thread sleeps between looks at its worker threads, when nothing wakes it.
SUPERVISE_SECONDS = 1.0


class Worker:
    """Runs ``concurrency`` threads, each claiming and running tasks on its own connection."""

    def __init__(
        self,
        queues: Sequence[str],
        *,
        concurrency: int = 1,
        burst: bool = False,
        max_tasks: int | None = None,
        name: str | None = None,
        scheduler: bool = True,
        pool: ProcessPool | None = None,
    ) -> None:
        self.queues = list(dict.fromkeys(queues))
        self.scheduler = scheduler
        self.pool = pool  # None: the tasks run on this process's threads
        self.concurrency = concurrency
        self.burst = burst
        self.budget = Budget(max_tasks)
        self.hostname = socket.gethostname()
        self.name = name or f"{self.hostname}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        self.signals_received = 0
        self.row: WorkerModel | None = None
        self.processed = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._running: dict[int, list[TaskModel]] = {}  # each thread's batch
        self._claims: dict[int, Claims] = {}  # and its claims, some sent ahead
        self._runners: list[BatchRunner | Child] = []
        # Set when tasks may be ready: by a NOTIFY on PostgreSQL, and on stop.
        self.wake = threading.Event()
        # Set when the main thread has something to look at: a signal, a stop, a thread's end.
        self._supervise = threading.Event()
        self.crashed = False
        self.liveness = Liveness()
        self.isolation_lock = IsolationLock()

    # Lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Consume until stopped (or drained with ``burst``); return the exit status."""
        self.liveness = self.pool.liveness() if self.pool else Liveness()
        self._install_signal_handlers()
        self.row = self._register()
        if self.row is None:
            return 0  # stopped before the database could be reached
        logger.info(
            "worker started name=%s id=%s queues=%s concurrency=%s database=%s",
            self.name,
            self.row.pk,
            ",".join(self.queues),
            self.concurrency,
            settings.DATABASE,
        )
        heartbeat = Heartbeat(self)
        heartbeat.start()
        fence = Fence(self)
        if self.scheduler:
            Scheduler(self.row, self.stopping).start()
        if settings.LISTEN_NOTIFY and dialect(queue_connection()).can_listen():
            Listener(self.wake, self.stopping, on_cancel=self.stop_cancelled).start()
        threads = [
            threading.Thread(target=self._run_thread, args=(i,), name=f"firefly-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        marked_stopping = False
        while any(thread.is_alive() for thread in threads):
            # Signal handlers run in this thread, and they, stop() and every worker thread's
            # exit set this event; the timeout is only a safety net, so an idle consumer
            # does not wake this thread many times a second.
            self._supervise.wait(SUPERVISE_SECONDS)
            self._supervise.clear()
            if self.signals_received >= 2:
                return self._interrupt(heartbeat)
            if fence.check():
                return self._interrupt(heartbeat, EXIT_STUCK)
            if self.pool is not None:
                self.pool.supervise()
            if self.stopping.is_set() and not marked_stopping:
                marked_stopping = self._set_state(WorkerState.STOPPING)
        heartbeat.stop()
        self._set_state(WorkerState.STOPPED)
        logger.info(
            "worker stopped name=%s processed=%s failed=%s", self.name, self.processed, self.failed
        )
        connections.close_all()
        return 1 if self.crashed else 0

    def _register(self) -> WorkerModel | None:
        """The worker's row, written once the database answers: a consumer started while the
        database restarts waits for it, with backoff, as a running one does. ``None`` if it
        was told to stop first."""
        delay = RECONNECT_FIRST_DELAY
        while not self.stopping.is_set():
            try:
                return WorkerModel.objects.create(
                    name=self.name,
                    hostname=self.hostname,
                    pid=os.getpid(),
                    queues=self.queues,
                    concurrency=self.concurrency,
                    pool="thread" if self.pool is None else "process",
                    engine=states.ENGINE_VERSION,
                    version=__version__,
                    last_heartbeat=DatabaseNow(),
                )
            except Error as exc:
                if not dialect(queue_connection()).is_connection_error(exc):
                    raise
                delay = self._wait_for_database(exc, delay)
        return None

    def stop(self) -> None:
        """Stop claiming; running tasks finish, then ``run()`` returns."""
        self.stopping.set()
        self.wake.set()
        self._supervise.set()

    def _set_state(self, state: str) -> bool:
        assert self.row is not None
        fields: dict[str, object] = {
            "state": state,
            "processed": self.processed,
            "failed": self.failed,
        }
        if state == WorkerState.STOPPED:
            fields["stopped"] = DatabaseNow()
            fields["executing"] = []
        try:
            try:
                WorkerModel.objects.filter(pk=self.row.pk).update(**fields)
            except Error as exc:
                # This thread's connection sat idle: after a database restart it is broken
                # although the database is back. Reconnect once.
                if not dialect(queue_connection()).is_connection_error(exc):
                    raise
                connections.close_all()
                WorkerModel.objects.filter(pk=self.row.pk).update(**fields)
        except Error as exc:
            logger.warning("could not record worker state=%s error=%s", state, exc)
            connections.close_all()
            return False
        return True

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handle(signum: int, frame: FrameType | None) -> None:
            self.signals_received += 1
            name = signal.Signals(signum).name
            if self.signals_received == 1:
                logger.info(
                    "worker stopping name=%s signal=%s: running tasks finish; "
                    "send it again to stop at once",
                    self.name,
                    name,
                )
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _interrupt(self, heartbeat: Heartbeat, status: int = 1) -> int:
        """Second signal (or stuck task threads): return running tasks to the queue and exit
        with ``status`` without waiting."""
        if self.pool is not None:
            self.pool.kill_all()  # first: no child may run a task put back
        with self._lock:
            threads = set(self._running) | set(self._claims)
            running = [row for thread in threads for row in self._held(thread)]
        logger.warning("worker interrupted name=%s running_tasks=%s", self.name, len(running))

        def release() -> None:
            try:
                for row in running:
                    TaskModel.objects.recover(row, self.row, AttemptOutcome.INTERRUPTED)
                self._set_state(WorkerState.STOPPED)
            finally:
                connections.close_all()

        releaser = threading.Thread(target=release, name="firefly-interrupt", daemon=True)
        releaser.start()
        releaser.join(INTERRUPT_TIMEOUT)
        heartbeat.stop()
        return status

    def stop_cancelled(self) -> None:
        """Stop the tasks running here that were cancelled (``firefly_tasks.cancellation``)."""
        with self._lock:
            held = [(r, self._held(r.thread)) for r in self._runners]
        try:
            stop_cancelled(held)
        except Error as exc:  # the next heartbeat looks again
            logger.warning("could not look for cancelled tasks error=%s", exc)
            connections.close_all()

    def held_by(self, thread: int) -> tuple[BatchRunner | Child, list[TaskModel]] | None:
        """The runner of task thread ``thread`` and the batch it holds, if it is one of ours."""
        with self._lock:
            runner = next((r for r in self._runners if r.thread == thread), None)
            return None if runner is None else (runner, self._held(thread))

    def _held(self, thread: int) -> list[TaskModel]:
        """The rows task thread ``thread`` holds: its batch, then those claimed ahead."""
        claims = self._claims.get(thread)
        return self._running.get(thread, []) + (claims.ahead() if claims else [])

    def executing(self) -> list[dict[str, Any]]:
        """What the threads execute at this moment (each thread's task, if any), as the
        heartbeat reports it: id, name, queue and start, oldest first."""
        with self._lock:
            now = [runner.executing for runner in self._runners]
        return [
            {
                "id": row.pk,
                "name": row.func_name,
                "queue": row.queue,
                "started": started.isoformat(),
            }
            for row, started in sorted(
                (e for e in now if e is not None), key=lambda executing: executing[1]
            )
        ]

    def children(self) -> list[dict[str, Any]] | None:
        """The process pool's children, as the heartbeat reports them (``None``: threads)."""
        return None if self.pool is None else self.pool.snapshot()

    # One thread's loop --------------------------------------------------------------------

    def _run_thread(self, slot: int) -> None:
        use_slot(slot)  # this thread's own rollup rows: no other thread waits on them
        try:
            self._loop(slot)
        except Exception:
            logger.exception("worker thread crashed name=%s", self.name)
            self.crashed = True
            self.stop()
        finally:
            connections.close_all()
            self._supervise.set()

    def _loop(self, slot: int) -> None:
        assert self.row is not None
        runner: BatchRunner | Child = (
            BatchRunner(self.row, self.stopping, liveness=self.liveness, lock=self.isolation_lock)
            if self.pool is None
            else self.pool.runner(self.row, slot)
        )
        leftovers = Leftovers(self.row)
        ahead = settings.CLAIM_AHEAD and dialect(queue_connection()).claims_ahead
        claims = Claims(
            self.queues,
            self.row.pk,
            self.budget,
            leftovers,
            ahead=ahead and isinstance(runner, BatchRunner),
            name=f"firefly-{slot}-ahead",
            fenced=lambda: isinstance(runner, BatchRunner) and runner.fenced,
        )
        with self._lock:
            self._runners.append(runner)
            self._claims[runner.thread] = claims
        try:
            self._turns(runner, claims, leftovers)
        finally:  # whatever ended the loop, nothing claimed stays held
            claims.close()
            leftovers.put_back_before_exit()
            if isinstance(runner, Child):
                runner.close()

    def _turns(self, runner: BatchRunner | Child, claims: Claims, leftovers: Leftovers) -> None:
        """Claim and run until stopped, drained (``--burst``) or out of ``--max-tasks``."""
        nap = settings.CONSUMER_NAP_TIME
        delay = RECONNECT_FIRST_DELAY
        while not self.stopping.is_set():
            try:
                leftovers.put_back()
                claimed, revivals = claims.collect() or (None, 0)
                if not claimed:
                    revivals = self.liveness.revivals
                    self.wake.clear()
                    claimed = claims.claim(runner.batch_size())
            except Error as exc:
                delay = self._wait_for_database(exc, delay)
                continue
            delay = RECONNECT_FIRST_DELAY
            if claimed is None:
                break
            if not claimed:
                if self.burst:
                    break
                self.wake.wait(nap)
                nap = min(nap * 2, settings.MAX_POLL_INTERVAL)
                continue
            nap = settings.CONSUMER_NAP_TIME
            if not self.stopping.is_set():
                claims.send_ahead(runner.batch_size(), self.liveness.revivals)
            cut_short = self._run_claimed(runner, claimed, revivals, leftovers)
            if cut_short or (isinstance(runner, BatchRunner) and runner.fenced):
                claims.give_back()  # a slow task, stop or fence: not to wait here for this one
            dialect(queue_connection()).check_connection()

    def _run_claimed(
        self,
        runner: BatchRunner | Child,
        rows: list[TaskModel],
        revivals: int,
        leftovers: Leftovers,
    ) -> bool:
        """Run claimed rows; what a lost connection leaves behind goes to ``leftovers``.
        Whether the runner handed rows back unrun."""
        with self._lock:
            self._running[threading.get_ident()] = rows
        try:
            outcomes, handed_back = runner.run(rows, revivals)
        except BatchInterrupted as exc:
            logger.warning("database connection lost while running tasks error=%s", exc.__cause__)
            connections.close_all()
            self.budget.give_back(len(exc.unstarted))
            leftovers.started += exc.started
            leftovers.unstarted += exc.unstarted
            return False
        finally:
            with self._lock:
                self._running.pop(threading.get_ident(), None)
        with self._lock:
            self.processed += len(outcomes)
            self.failed += sum(outcome.is_failure for outcome in outcomes)
        if handed_back:
            self.budget.give_back(len(handed_back))
            leftovers.unstarted += handed_back
            with contextlib.suppress(Error):  # else at the next turn, or at exit
                leftovers.put_back()
        return bool(handed_back)

    def _wait_for_database(self, exc: Exception, delay: float) -> float:
        logger.warning("database unavailable, reconnecting in %.1fs error=%s", delay, exc)
        connections.close_all()
        self.stopping.wait(delay)
        return min(delay * 2, RECONNECT_MAX_DELAY)
