"""Helpers for running Firefly tasks inside a project's own test suite."""

from __future__ import annotations

import time
from collections.abc import Sequence

from django.db import connections, transaction

from firefly_tasks import database
from firefly_tasks.conf import settings
from firefly_tasks.execution import run_alone
from firefly_tasks.models import TaskModel


def run_pending_tasks(
    queues: Sequence[str] | None = None, *, limit: int | None = None, using: str | None = None
) -> int:
    """Run ready tasks in this process, as a consumer would, until none is left.

    ``queues`` defaults to every queue that holds a ready task. Tasks scheduled by the tasks
    that run are run too. A ready task whose row another transaction holds for a moment (a
    waiter marking it awaited, a consumer's claim) is claimed again for up to
    ``LOCKED_PATIENCE`` seconds. Returns the number of attempts made.
    """
    using = using or database.alias()
    ran, unexplained = 0, 0
    patience = time.monotonic() + LOCKED_PATIENCE
    while limit is None or ran < limit:
        names = list(queues) if queues is not None else _ready_queues(TaskModel, using)
        rows = TaskModel.objects.using(using).claim(names, 1)
        if rows:
            run_alone(rows[0])
            ran, unexplained = ran + 1, 0
            patience = time.monotonic() + LOCKED_PATIENCE
        elif time.monotonic() < patience and _held_by_another(names, using):
            time.sleep(0.01)
        elif unexplained == 0 and time.monotonic() < patience:
            unexplained = 1  # the row may have been let go between the claim and the look
        else:
            return ran
    return ran


# How long run_pending_tasks() claims again a ready task whose row another transaction holds.
LOCKED_PATIENCE = 2.0


def _held_by_another(names: list[str], using: str) -> bool:
    """Whether the claim left out a ready task of ``names`` only because its row was locked
    (PostgreSQL's and MariaDB's claims skip locked rows): not a paused queue or a full
    limit, which leave the row unlocked."""
    if not connections[using].features.has_select_for_update_skip_locked:
        return False
    ready = TaskModel.objects.using(using).ready().filter(queue__in=names)
    with transaction.atomic(using=using):
        ids = set(ready.values_list("pk", flat=True)[:1000])
        free = ready.filter(pk__in=ids).select_for_update(skip_locked=True)
        return ids != set(free.values_list("pk", flat=True))


def _ready_queues(model: type[TaskModel], using: str) -> list[str]:
    names = model.objects.using(using).ready().values_list("queue", flat=True).distinct()
    return list(names) or [settings.DEFAULT_QUEUE]
