"""Labels: tasks scheduled with ``using(label="nightly-2026-12-01")`` and read back together,
as django-q's groups are (docs/workflows.md, "Labels").

Every function takes the label and reads the tasks that carry it, in the order they were
scheduled; ``wait`` (seconds) polls until ``count`` of them finished, or until all of them
did when ``count`` is None.
"""

from __future__ import annotations

import time
from typing import Any

from django.db.models import QuerySet

from firefly_tasks import database
from firefly_tasks.models import FINISHED_STATUSES, TaskModel, TaskStatus

POLL = 0.05


def tasks(label: str, *, using: str | None = None) -> QuerySet[TaskModel]:
    """Every task with ``label``, in the order they were scheduled."""
    using = using or database.alias()
    return TaskModel.objects.using(using).filter(label=label).order_by("pk")


def count(label: str, *, failures: bool = False, using: str | None = None) -> int:
    """How many tasks with ``label`` completed (with ``failures``: failed for good or
    were cancelled instead)."""
    using = using or database.alias()
    return _finished(label, "failed" if failures else "completed", using).count()


def results(
    label: str,
    *,
    failures: bool = False,
    wait: float = 0,
    count: int | None = None,
    using: str | None = None,
) -> list[Any]:
    """The results of the completed tasks with ``label``, in the order they were scheduled;
    with ``failures``, the failed and cancelled ones too, as their errors."""
    using = using or database.alias()
    _wait_for(label, wait, count, using)
    found = _finished(label, "finished" if failures else "completed", using)
    return [row.returned if row.status == TaskStatus.COMPLETED else row.error for row in found]


def finished(
    label: str,
    *,
    failures: bool = True,
    wait: float = 0,
    count: int | None = None,
    using: str | None = None,
) -> list[TaskModel]:
    """The finished tasks with ``label`` (without ``failures``: only those that completed)."""
    using = using or database.alias()
    _wait_for(label, wait, count, using)
    return list(_finished(label, "finished" if failures else "completed", using))


def delete(label: str, *, using: str | None = None) -> int:
    """Delete the finished tasks with ``label`` (and their attempts); unfinished ones stay.
    Returns how many tasks were deleted."""
    using = using or database.alias()
    _, by_model = tasks(label, using=using).filter(status__in=FINISHED_STATUSES).delete()
    return int(by_model.get(TaskModel._meta.label, 0))


def _finished(label: str, which: str, using: str) -> QuerySet[TaskModel]:
    """The tasks with ``label`` that ``completed``, ``failed`` (or were cancelled), or
    ``finished`` (either)."""
    statuses = {
        "completed": (TaskStatus.COMPLETED,),
        "failed": (TaskStatus.FAILED, TaskStatus.CANCELLED),
        "finished": FINISHED_STATUSES,
    }[which]
    return tasks(label, using=using).filter(status__in=statuses)


def _wait_for(label: str, wait: float, count: int | None, using: str) -> None:
    """Poll for up to ``wait`` seconds until ``count`` tasks with ``label`` finished (all
    of them when ``count`` is None)."""
    deadline = time.monotonic() + wait
    every = tasks(label, using=using)
    while time.monotonic() < deadline:
        done = every.filter(status__in=FINISHED_STATUSES).count()
        if done >= (every.count() if count is None else count):
            return
        time.sleep(min(POLL, max(deadline - time.monotonic(), 0)))
