"""Rescue: marking silent workers dead and returning the tasks they held to the queue.

Liveness is judged by the database's clock, so hosts with skewed clocks agree.
"""

from __future__ import annotations

import logging

from django.db import OperationalError
from django.db.models import Q

from firefly_tasks import database
from firefly_tasks.clock import DatabaseNow, database_time_ago
from firefly_tasks.conf import settings
from firefly_tasks.dialects import dialect
from firefly_tasks.models import TaskModel, WorkerModel
from firefly_tasks.states import LIVE_WORKER_STATES, AttemptOutcome, TaskStatus, WorkerState

logger = logging.getLogger("firefly_tasks")


def mark_dead_workers(
    timeout: float | None = None, *, lock_wait: float | None = None
) -> dict[int, int]:
    """Mark workers silent for longer than ``timeout`` as dead and recover their tasks.

    The guarded update of the worker row decides who recovers it, so when several consumers
    run this at once each dead worker is recovered exactly once. With ``lock_wait``, a worker
    whose rows stay locked that long (its process froze inside a transaction) is left for a
    later call instead of blocking this one. Returns ``{worker id: tasks recovered}`` for the
    workers this call recovered.
    """
    limit = database_time_ago(settings.WORKER_TIMEOUT if timeout is None else timeout)
    stale = WorkerModel.objects.filter(state__in=LIVE_WORKER_STATES, last_heartbeat__lt=limit)
    recovered: dict[int, int] = {}
    for worker in stale.only("pk", "name"):
        try:
            with database.atomic():
                if lock_wait is not None:
                    dialect(database.queue_connection()).limit_lock_wait(lock_wait)
                won = stale.filter(pk=worker.pk).update(
                    state=WorkerState.DEAD, stopped=DatabaseNow()
                )
                if not won:
                    continue
                running = TaskModel.objects.filter(worker_id=worker.pk, status=TaskStatus.RUNNING)
                recovered[worker.pk] = sum(
                    TaskModel.objects.recover(row, worker, AttemptOutcome.LOST) for row in running
                )
        except OperationalError as exc:
            if not dialect(database.queue_connection()).is_lock_timeout(exc):
                raise
            # A frozen transaction of that worker still holds one of its rows: nothing of
            # this recovery committed; the next heartbeat tries again.
            logger.warning("worker recovery deferred, a task row is locked id=%s", worker.pk)
            continue
        logger.warning(
            "worker dead name=%s id=%s tasks_recovered=%s",
            worker.name,
            worker.pk,
            recovered[worker.pk],
        )
    return recovered


def recover_orphans(timeout: float | None = None) -> int:
    """Recover ``running`` tasks that no live worker holds, claimed longer than ``timeout`` ago.

    Such a row has no worker (it was deleted, or the row was written by hand), or its worker
    stopped or died without releasing it. Recovered like a dead worker's tasks.
    """
    limit = database_time_ago(settings.WORKER_TIMEOUT if timeout is None else timeout)
    live = WorkerModel.objects.filter(state__in=LIVE_WORKER_STATES).values("pk")
    orphans = TaskModel.objects.filter(status=TaskStatus.RUNNING, started__lt=limit).filter(
        Q(worker_id__isnull=True) | ~Q(worker_id__in=live)
    )
    recovered = 0
    # The attempt names the worker that held the row, where it still exists.
    for row in orphans.select_related("worker"):
        if TaskModel.objects.recover(row, row.worker, AttemptOutcome.LOST, orphan=True):
            recovered += 1
    if recovered:
        logger.warning("orphaned running tasks recovered count=%s", recovered)
    return recovered
