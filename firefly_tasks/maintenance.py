"""Rescue: marking silent workers dead and returning the tasks they held to the queue.

Liveness is judged by the database's clock, so hosts with skewed clocks agree.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from django.db import OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from firefly_tasks.conf import settings
from firefly_tasks.database import (
    DatabaseNow,
    database_time_ago,
    is_lock_timeout,
    limit_lock_wait,
)
from firefly_tasks.models import (
    AttemptOutcome,
    Isolation,
    TaskAttempt,
    TaskModel,
    TaskStatus,
    WorkerModel,
    WorkerState,
)

logger = logging.getLogger("firefly_tasks")

LIVE_STATES = (WorkerState.RUNNING, WorkerState.STOPPING)


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
    stale = WorkerModel.objects.filter(state__in=LIVE_STATES, last_heartbeat__lt=limit)
    recovered: dict[int, int] = {}
    for worker in stale.only("pk", "name"):
        try:
            with transaction.atomic():
                if lock_wait is not None:
                    limit_lock_wait(lock_wait)
                won = stale.filter(pk=worker.pk).update(
                    state=WorkerState.DEAD, stopped=DatabaseNow()
                )
                if not won:
                    continue
                running = TaskModel.objects.filter(worker_id=worker.pk, status=TaskStatus.RUNNING)
                recovered[worker.pk] = sum(
                    end_unfinished_attempt(row, worker, AttemptOutcome.LOST) for row in running
                )
        except OperationalError as exc:
            if not is_lock_timeout(exc):
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
    live = WorkerModel.objects.filter(state__in=LIVE_STATES).values("pk")
    orphans = TaskModel.objects.filter(status=TaskStatus.RUNNING, started__lt=limit).filter(
        Q(worker_id__isnull=True) | ~Q(worker_id__in=live)
    )
    recovered = 0
    # The attempt names the worker that held the row, where it still exists.
    for row in orphans.select_related("worker"):
        if end_unfinished_attempt(row, row.worker, AttemptOutcome.LOST, orphan=True):
            recovered += 1
    if recovered:
        logger.warning("orphaned running tasks recovered count=%s", recovered)
    return recovered


def end_unfinished_attempt(
    row: TaskModel,
    worker: WorkerModel | None,
    outcome: str,
    *,
    error: str = "",
    orphan: bool = False,
) -> bool:
    """Record an attempt that never finished and requeue the task, to run alone next time.

    ``lost`` (its worker died) is charged only to a task that was proven to run alone
    (``Isolation.STARTED_ALONE``): any other is recorded as ``released``, uncharged, since
    nothing shows it had started. ``interrupted`` attempts are never charged. A task charged
    more than ``FIREFLY_MAX_LOST_ATTEMPTS`` times fails as poison instead. Guarded by the
    attempt number: returns False, writing nothing, if the task finished or moved on meanwhile.
    """
    now = timezone.now()
    charged = outcome == AttemptOutcome.LOST and row.isolation == Isolation.STARTED_ALONE
    if outcome == AttemptOutcome.LOST and not charged:
        outcome = AttemptOutcome.RELEASED
    if not error:
        if outcome == AttemptOutcome.INTERRUPTED:
            error = "Interrupted: the worker stopped before the task finished"
        elif orphan:
            error = "the task was left running with no live worker"
        else:
            error = "the worker holding this task stopped sending heartbeats"
        if charged:
            error = f"WorkerLost: {error}, while the task ran alone"
        elif outcome == AttemptOutcome.RELEASED:
            error = (
                f"Released: {error}, before the task was known to start; not charged, and "
                "it runs alone next time"
            )
    # A lost task runs alone next time; an interrupted one keeps running alone if it did.
    alone = outcome != AttemptOutcome.INTERRUPTED or row.isolation != Isolation.BATCHED
    changes: dict[str, Any] = {
        "worker": None,
        "error": error,
        "traceback": "",
        "isolation": Isolation.ALONE if alone else Isolation.BATCHED,
    }
    if charged:
        changes["lost_attempts"] = F("lost_attempts") + 1
    poison = charged and row.lost_attempts + 1 > settings.MAX_LOST_ATTEMPTS
    if poison:
        error = (
            f"PoisonTask: lost with its worker {row.lost_attempts + 1} times while running "
            f"alone (FIREFLY_MAX_LOST_ATTEMPTS = {settings.MAX_LOST_ATTEMPTS}); it may be "
            "crashing the consumer, so it is not run again"
        )
        changes.update(status=TaskStatus.FAILED, failed=now, error=error)
    else:
        changes.update(status=TaskStatus.CREATED, not_before=now)
    with transaction.atomic():
        updated = TaskModel.objects.filter(
            pk=row.pk, status=TaskStatus.RUNNING, attempt=row.attempt
        ).update(**changes)
        if not updated:
            return False
        TaskAttempt.objects.create(
            task_id=row.pk,
            number=row.attempt,
            worker_id=worker.pk if worker else None,
            worker_name=worker.name if worker else "",
            started=row.started,
            finished=now,
            outcome=outcome,
            error=error,
        )
    log = logger.error if poison else logger.warning
    log("task %s id=%s attempt=%s poison=%s", outcome, row.pk, row.attempt, poison)
    return True


def release_lost_claim(worker: WorkerModel, stamp: datetime.datetime) -> int:
    """Undo a claim whose reply was lost with the connection (it may have committed).

    A claim stamps ``started`` with its own time, which identifies the rows it took.
    """
    return TaskModel.objects.filter(
        status=TaskStatus.RUNNING, worker_id=worker.pk, started=stamp
    ).update(status=TaskStatus.CREATED, attempt=F("attempt") - 1, worker=None, started=None)


def release_unstarted(rows: list[TaskModel]) -> int:
    """Return claimed tasks that never started to ``created``, as if never claimed."""
    released = 0
    for row in rows:
        released += TaskModel.objects.filter(
            pk=row.pk, status=TaskStatus.RUNNING, attempt=row.attempt
        ).update(status=TaskStatus.CREATED, attempt=F("attempt") - 1, worker=None, started=None)
    return released
