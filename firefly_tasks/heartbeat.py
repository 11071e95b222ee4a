"""A consumer's heartbeat: a thread with its own connection that reports the worker alive
and, each time, rescues the tasks of workers that fell silent."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from django.db import Error, connection

from firefly_tasks.conf import settings
from firefly_tasks.database import DatabaseNow
from firefly_tasks.maintenance import LIVE_STATES, mark_dead_workers
from firefly_tasks.models import WorkerModel, WorkerState

if TYPE_CHECKING:
    from firefly_tasks.worker import Worker

logger = logging.getLogger("firefly_tasks")


class Heartbeat(threading.Thread):
    def __init__(self, worker: Worker) -> None:
        super().__init__(name="firefly-heartbeat", daemon=True)
        self.worker = worker
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            while not self._stop_event.wait(settings.HEARTBEAT_INTERVAL):
                try:
                    self.beat()
                    mark_dead_workers()
                except Error as exc:
                    logger.warning("heartbeat failed, will retry error=%s", exc)
                    connection.close()
        finally:
            connection.close()

    def beat(self) -> None:
        worker = self.worker
        assert worker.row is not None
        rows = WorkerModel.objects.filter(pk=worker.row.pk)
        counts = {"processed": worker.processed, "failed": worker.failed}
        if rows.filter(state__in=LIVE_STATES).update(last_heartbeat=DatabaseNow(), **counts):
            return
        # Another consumer declared this one dead (a long pause, or a database outage longer
        # than FIREFLY_WORKER_TIMEOUT) and requeued its tasks; finishing them now would be
        # fenced off. Come back to life for the tasks still to come.
        state = WorkerState.STOPPING if worker.stopping.is_set() else WorkerState.RUNNING
        rows.update(state=state, stopped=None, last_heartbeat=DatabaseNow(), **counts)
        logger.warning("worker was marked dead while alive, revived name=%s", worker.name)
