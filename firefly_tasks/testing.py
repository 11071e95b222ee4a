"""Helpers for running Firefly tasks inside a project's own test suite."""

from __future__ import annotations

from collections.abc import Sequence

from firefly_tasks.conf import settings
from firefly_tasks.execution import run_alone
from firefly_tasks.models import TaskModel


def run_pending_tasks(
    queues: Sequence[str] | None = None, *, limit: int | None = None, using: str = "default"
) -> int:
    """Run ready tasks in this process, as a consumer would, until none is left.

    ``queues`` defaults to every queue that holds a ready task. Tasks scheduled by the tasks
    that run are run too. Returns the number of attempts made.
    """
    ran = 0
    while limit is None or ran < limit:
        names = list(queues) if queues is not None else _ready_queues(TaskModel, using)
        rows = TaskModel.objects.using(using).claim(names, 1)
        if not rows:
            return ran
        run_alone(rows[0])
        ran += 1
    return ran


def _ready_queues(model: type[TaskModel], using: str) -> list[str]:
    names = model.objects.using(using).ready().values_list("queue", flat=True).distinct()
    return list(names) or [settings.DEFAULT_QUEUE]
