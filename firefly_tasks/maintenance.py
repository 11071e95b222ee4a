"""Rescue: marking silent workers dead and returning the tasks they held to the queue.

Liveness is judged by the database's clock, so hosts with skewed clocks agree.
"""

from __future__ import annotations

import logging

from django.db import OperationalError
from django.db.models import Q, QuerySet

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
    workers = list(stale.only("pk", "name"))
    restarted = _silent_since_a_restart(stale) if workers else set()
    for worker in workers:
        try:
            with database.atomic():
                if lock_wait is not None:
                    dialect(database.queue_connection()).limit_lock_wait(lock_wait)
                # Its rows first, then its row: a frozen transaction of the worker that holds
                # one of them is waited for before the worker is judged, so that a worker
                # resumed meanwhile beats (its row is not held) and is spared. The rows are
                # read as locked, not from a snapshot taken before: one given back unrun and
                # claimed again by another worker is not this worker's any more.
                held = _lock_running(worker.pk)
                won = stale.filter(pk=worker.pk).update(
                    state=WorkerState.DEAD, stopped=DatabaseNow()
                )
                if not won:
                    continue
                recovered[worker.pk] = sum(
                    TaskModel.objects.recover(
                        row, worker, AttemptOutcome.LOST, restarted=worker.pk in restarted
                    )
                    for row in held
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


def _silent_since_a_restart(stale: QuerySet[WorkerModel]) -> set[int]:
    """Of the ``stale`` workers, those silent since before the database server started: they
    went quiet with its restart, and one that died meanwhile (killed while it waited for the
    database) may hold a task whose start it recorded just before the restart and never began.
    Their tasks are released uncharged: the restart, not the task, silenced them."""
    uptime = dialect(database.queue_connection()).server_uptime()
    if uptime is None:
        return set()
    before = stale.filter(last_heartbeat__lt=database_time_ago(uptime))
    return set(before.values_list("pk", flat=True))


def _lock_running(worker_id: int) -> list[TaskModel]:
    """The tasks ``worker_id`` runs, locked for this transaction (waiting for their holders),
    by primary key: a range of an index would lock more on MariaDB."""
    running = TaskModel.objects.filter(worker_id=worker_id, status=TaskStatus.RUNNING)
    ids = list(running.values_list("pk", flat=True))
    locked = TaskModel.objects.filter(pk__in=ids).select_for_update().order_by("pk")
    return [
        row for row in locked if row.worker_id == worker_id and row.status == TaskStatus.RUNNING
    ]


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
