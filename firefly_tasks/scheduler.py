"""A consumer's scheduler: a thread with its own connection that syncs the declared schedules
when the consumer starts, then enqueues due ticks as they fall due (see
``firefly_tasks.ticks``). Every consumer runs one unless started with ``--no-scheduler``:
there is no leader to elect or lose."""

from __future__ import annotations

import logging
import threading

from django.db import Error, connections

from firefly_tasks import schedules, ticks
from firefly_tasks.models import WorkerModel

logger = logging.getLogger("firefly_tasks")

# The longest the scheduler sleeps: how soon it sees a schedule made or changed elsewhere.
IDLE_SECONDS = 1.0
# The shortest: a tick due now is enqueued at once, without spinning on a clock skew.
SHORTEST_SECONDS = 0.005
# After a failed pass (the database away).
ERROR_SECONDS = 1.0


class Scheduler(threading.Thread):
    def __init__(self, worker: WorkerModel, stopping: threading.Event) -> None:
        super().__init__(name="firefly-scheduler", daemon=True)
        self.worker = worker
        self.stopping = stopping

    def run(self) -> None:
        try:
            synced = False
            while not self.stopping.is_set():
                try:
                    if not synced:
                        schedules.sync(self.worker)
                        synced = True
                    wait = self.tick()
                except Error as exc:
                    logger.warning("scheduler pass failed, will retry error=%s", exc)
                    connections.close_all()
                    wait = ERROR_SECONDS
                self.stopping.wait(wait)
        except Exception:
            # Never the consumer's end: its threads go on running tasks.
            logger.exception("scheduler crashed; this consumer enqueues no more ticks")
        finally:
            connections.close_all()

    def tick(self) -> float:
        """Enqueue what is due; return how long to sleep until the next tick (at most
        :data:`IDLE_SECONDS`). With nothing due, one query."""
        found = ticks.next_due()
        if found is None:
            return IDLE_SECONDS
        earliest, now = found
        if earliest <= now:
            while ticks.enqueue_due()[0] >= ticks.PASS_MOST:
                pass
            return SHORTEST_SECONDS  # look again at once: the next tick may be due already
        return min(max((earliest - now).total_seconds(), SHORTEST_SECONDS), IDLE_SECONDS)
