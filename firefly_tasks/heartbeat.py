"""A consumer's heartbeat: a thread with its own connection that reports the worker alive
and, each time, rescues the tasks of workers that fell silent.

It also keeps the worker's :class:`~firefly_tasks.liveness.Liveness` up to date.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Protocol

from django.db import Error, connections

from firefly_tasks.clock import DatabaseNow
from firefly_tasks.conf import settings
from firefly_tasks.liveness import Liveness
from firefly_tasks.maintenance import mark_dead_workers, recover_orphans
from firefly_tasks.models import TaskModel, WorkerModel
from firefly_tasks.pool import resident_kib
from firefly_tasks.states import WorkerState
from firefly_tasks.worker_control import stop_requested_by

logger = logging.getLogger("firefly_tasks")


class HeartbeatOwner(Protocol):
    """What a heartbeat reads of its consumer (:class:`~firefly_tasks.worker.Worker`)."""

    name: str
    row: WorkerModel | None
    processed: int
    failed: int
    stopping: threading.Event
    liveness: Liveness

    def executing(self) -> list[dict[str, Any]]: ...

    def children(self) -> list[dict[str, Any]] | None: ...

    def stop_cancelled(self) -> None: ...

    def stop(self) -> None: ...


class Heartbeat(threading.Thread):
    def __init__(self, worker: HeartbeatOwner) -> None:
        super().__init__(name="firefly-heartbeat", daemon=True)
        self.worker = worker
        self._stop_event = threading.Event()
        # Until then (monotonic), declare no one dead: see tick().
        self._reconcile_at = 0.0  # when to unpark what free slots allow (slots.py) next
        self._grace_until = 0.0

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            while not self._stop_event.wait(settings.HEARTBEAT_INTERVAL):
                self.tick()
        finally:
            connections.close_all()

    def tick(self) -> None:
        """One heartbeat, then the rescue of dead workers' and orphaned tasks.

        After this worker could not beat (the database was unreachable, or the process was
        paused and declared dead), it rescues nothing for one ``FIREFLY_WORKER_TIMEOUT``: the
        other consumers were cut off too, and need that long to report in again. Without this
        pause, every outage longer than the timeout would have every live worker declared
        dead by the first one back.
        """
        try:
            if not self.beat():
                self._grace_until = time.monotonic() + settings.WORKER_TIMEOUT
            self.worker.stop_cancelled()
            self._obey_stop_request()
            if time.monotonic() >= self._grace_until:
                # Never held up by a frozen consumer's locks for longer than a beat.
                mark_dead_workers(lock_wait=settings.HEARTBEAT_INTERVAL)
                recover_orphans()
                if time.monotonic() >= self._reconcile_at:
                    self._reconcile_at = time.monotonic() + settings.WORKER_TIMEOUT
                    TaskModel.objects.reconcile_slots()
        except Error as exc:
            logger.warning("heartbeat failed, will retry error=%s", exc)
            connections.close_all()
            self._grace_until = time.monotonic() + settings.WORKER_TIMEOUT

    def _obey_stop_request(self) -> None:
        """Stop, as SIGTERM would, once someone asked (firefly_tasks.worker_control)."""
        worker = self.worker
        if worker.stopping.is_set() or worker.row is None:
            return
        by = stop_requested_by(worker.row.pk)
        if by is not None:
            logger.info("worker asked to stop name=%s by=%s", worker.name, by or "-")
            worker.stop()

    def beat(self) -> bool:
        """Report the worker alive; False if it had been declared dead (and is now revived)."""
        worker = self.worker
        assert worker.row is not None
        counts = {
            "processed": worker.processed,
            "failed": worker.failed,
            "executing": worker.executing(),
            "children": worker.children(),
            "memory_kib": resident_kib(os.getpid()),
        }
        if worker.liveness.beat(worker.row.pk, **counts):
            return True
        # Another consumer declared this one dead (a long pause, or a database outage longer
        # than FIREFLY_WORKER_TIMEOUT) and requeued its tasks; finishing them now would be
        # fenced off. Come back to life for the tasks still to come: the worker threads see
        # the revival and check what they hold before they start any more of it. Only from
        # dead: a beat racing the consumer's own last write (``stopped``) must not undo it.
        worker.liveness.revivals += 1
        state = WorkerState.STOPPING if worker.stopping.is_set() else WorkerState.RUNNING
        revived = WorkerModel.objects.filter(pk=worker.row.pk, state=WorkerState.DEAD).update(
            state=state, stopped=None, last_heartbeat=DatabaseNow(), **counts
        )
        if revived:
            logger.warning("worker was marked dead while alive, revived name=%s", worker.name)
        return False
