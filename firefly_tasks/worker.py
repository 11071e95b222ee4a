"""The consumer: a process that claims ready tasks and runs them on its threads."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Sequence
from types import FrameType

from django.db import connection
from django.utils import timezone

from firefly_tasks.claim import claim_tasks
from firefly_tasks.conf import settings
from firefly_tasks.executor import execute
from firefly_tasks.models import WorkerModel, WorkerState

logger = logging.getLogger("firefly_tasks")


class Budget:
    """How many more attempts may start under ``--max-tasks`` (unbounded when ``None``)."""

    def __init__(self, limit: int | None) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        with self._lock:
            if self._left is None:
                return wanted
            granted = min(wanted, self._left)
            self._left -= granted
            return granted

    def give_back(self, count: int) -> None:
        if count:
            with self._lock:
                if self._left is not None:
                    self._left += count


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
    ) -> None:
        self.queues = list(dict.fromkeys(queues))
        self.concurrency = concurrency
        self.burst = burst
        self.budget = Budget(max_tasks)
        self.hostname = socket.gethostname()
        self.name = name or f"{self.hostname}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        self.row: WorkerModel | None = None
        self.processed = 0
        self.failed = 0
        self._counts_lock = threading.Lock()

    # Lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Consume until stopped (or drained with ``burst``); return the exit status."""
        self.row = WorkerModel.objects.create(
            name=self.name,
            hostname=self.hostname,
            pid=os.getpid(),
            queues=self.queues,
            concurrency=self.concurrency,
        )
        logger.info(
            "worker started name=%s queues=%s concurrency=%s",
            self.name,
            ",".join(self.queues),
            self.concurrency,
        )
        self._install_signal_handlers()
        threads = [
            threading.Thread(target=self._run_thread, name=f"firefly-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)
        WorkerModel.objects.filter(pk=self.row.pk).update(
            state=WorkerState.STOPPED,
            stopped=timezone.now(),
            processed=self.processed,
            failed=self.failed,
        )
        logger.info("worker stopped name=%s", self.name)
        connection.close()
        return 0

    def stop(self) -> None:
        self.stopping.set()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handle(signum: int, frame: FrameType | None) -> None:
            logger.info("worker stopping name=%s signal=%s", self.name, signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    # One thread's loop --------------------------------------------------------------------

    def _run_thread(self) -> None:
        from django.db import connections

        try:
            self._loop()
        except Exception:
            logger.exception("worker thread crashed name=%s", self.name)
            self.stop()
        finally:
            connections.close_all()

    def _loop(self) -> None:
        nap = settings.CONSUMER_NAP_TIME
        assert self.row is not None
        while not self.stopping.is_set():
            granted = self.budget.take(1)
            if not granted:
                return
            rows = claim_tasks(self.queues, granted, self.row.pk)
            self.budget.give_back(granted - len(rows))
            if not rows:
                if self.burst:
                    return
                self.stopping.wait(nap)
                nap = min(nap * 2, settings.MAX_POLL_INTERVAL)
                continue
            nap = settings.CONSUMER_NAP_TIME
            for row in rows:
                outcome = execute(row, self.row)
                self._count(outcome)

    def _count(self, outcome: str) -> None:
        with self._counts_lock:
            self.processed += 1
            if outcome in ("failed", "retry"):
                self.failed += 1
