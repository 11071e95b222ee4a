"""What the dashboard reads of the rollups consumers write (``firefly_tasks.rollups``): per
queue, the completions of each minute of the last hour, the failures, and the mean wait and
run times. One query over at most an hour of rollup rows, never over the task table."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Sum

from firefly_tasks.models import TaskRollup

MINUTES = 60


@dataclass
class Window:
    """One queue's rollups over the chart's minutes."""

    per_minute: list[int] = field(default_factory=lambda: [0] * MINUTES)
    failed: int = 0
    retried: int = 0
    run_seconds: float = 0.0
    wait_seconds: float = 0.0

    @property
    def completed(self) -> int:
        return sum(self.per_minute)

    @property
    def attempts(self) -> int:
        return self.completed + self.failed + self.retried

    @property
    def mean_run(self) -> datetime.timedelta | None:
        return self._mean(self.run_seconds)

    @property
    def mean_wait(self) -> datetime.timedelta | None:
        return self._mean(self.wait_seconds)

    def _mean(self, seconds: float) -> datetime.timedelta | None:
        return datetime.timedelta(seconds=seconds / self.attempts) if self.attempts else None


def window_start(now: datetime.datetime) -> datetime.datetime:
    """The first minute of the chart that ends with the minute of ``now``."""
    return now.replace(second=0, microsecond=0) - datetime.timedelta(minutes=MINUTES - 1)


def by_queue(start: datetime.datetime) -> dict[str, Window]:
    """Each queue's :class:`Window` from ``start`` on: the rollups of every writer summed."""
    windows: dict[str, Window] = {}
    rows = (
        TaskRollup.objects.filter(minute__gte=start)
        .values("queue", "minute")
        .annotate(
            completed=Sum("completed"),
            failed=Sum("failed"),
            retried=Sum("retried"),
            run=Sum("run_seconds"),
            wait=Sum("wait_seconds"),
        )
        .order_by()
    )
    for row in rows:
        window = windows.setdefault(row["queue"], Window())
        index = int((row["minute"] - start).total_seconds() // 60)
        if not 0 <= index < MINUTES:
            continue  # a writer's clock ahead of this one's
        window.per_minute[index] += row["completed"]
        window.failed += row["failed"]
        window.retried += row["retried"]
        window.run_seconds += row["run"]
        window.wait_seconds += row["wait"]
    return windows
