"""Stopping running tasks that were cancelled (``TaskModel.objects.cancel(running=True)``).

The canceller moves the row to ``cancelled`` and records its attempt; the consumer running it
learns at its next heartbeat (``FIREFLY_HEARTBEAT_INTERVAL``), or at once on PostgreSQL, where
the canceller NOTIFYs and the consumer's listener hears it, and raises ``TaskCancelled`` in the
thread running it (``firefly_tasks.deadlines``), or cancels an ``@atask`` at its ``await``. A
thread that does not stop is fenced after ``FIREFLY_TIMEOUT_GRACE``, as at a timeout
(``firefly_tasks.fence``). With ``--pool process`` the child running it is told by SIGUSR1
(``firefly_tasks.alarms``) and killed after the grace (``firefly_tasks.pool``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from firefly_tasks.models import TaskModel
from firefly_tasks.queryset import CANCEL_NOTICE
from firefly_tasks.states import Event, target

if TYPE_CHECKING:
    from firefly_tasks.batches import BatchRunner
    from firefly_tasks.pool import Child

logger = logging.getLogger("firefly_tasks")

NOTICE = CANCEL_NOTICE
"""The payload of the NOTIFY a cancel of running tasks sends on PostgreSQL."""


def stop_cancelled(held: Sequence[tuple[BatchRunner | Child, list[TaskModel]]]) -> int:
    """Of the batches ``held`` (each thread's runner and claimed rows), stop the tasks that
    were cancelled: ``TaskCancelled`` in the thread running one, and the runner told to skip
    the others when it reaches them. One query, none when idle; returns how many were found."""
    rows = [row for _, batch in held for row in batch]
    if not rows:
        return 0
    cancelled = set(
        TaskModel.objects.filter(
            pk__in=[row.pk for row in rows], status=target(Event.ABORT)
        ).values_list("pk", "attempt")
    )
    if not cancelled:
        return 0
    for runner, batch in held:
        executing = runner.executing
        for row in batch:
            if (row.pk, row.attempt) not in cancelled:
                continue
            runner.drop(row)
            if executing is not None and executing[0] is row:
                token = (row.pk, row.attempt)
                if runner.interrupt(token):
                    logger.warning("stopping task id=%s attempt=%s: cancelled while it ran", *token)
    return len(cancelled)
