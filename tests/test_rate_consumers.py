"""A rate limit with real consumer processes: no one-second window holds more starts than the
limit and its burst (the whole count). Every database."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from firefly_tasks.models import FINISHED_STATUSES, TaskModel, TaskStatus
from tests.conftest import Consumer, wait_until
from tests.testapp import tasks
from tests.testapp.models import Run

pytestmark = pytest.mark.slow

LIMIT, BURST, TASKS = 10, 10, 100


def test_a_hundred_tasks_at_ten_a_second_across_three_consumers(
    start_consumer: Callable[..., Consumer], figure: Callable[..., None]
) -> None:
    limited = tasks.record_interval.using(rate_limit=f"{LIMIT}/s", rate_key="partner")
    rows = limited.schedule_many([("partner", 0)] * TASKS)
    for _ in range(3):
        start_consumer("--concurrency", "4")

    done = TaskModel.objects.filter(pk__in=[row.pk for row in rows])
    wait_until(lambda: not done.exclude(status__in=FINISHED_STATUSES).exists(), timeout=120)

    assert set(done.values_list("status", "attempt")) == {(TaskStatus.COMPLETED, 1)}
    starts = sorted(Run.objects.filter(label="partner").values_list("began", flat=True))
    assert len(starts) == TASKS
    busiest = max(sum(1 for other in starts if start <= other < start + 1.0) for start in starts)
    assert busiest <= LIMIT + BURST
    span = starts[-1] - starts[0]
    assert span >= (TASKS - LIMIT - BURST) / LIMIT  # it was held back, not just spread
    figure(tasks=TASKS, busiest_second=busiest, span_s=span)
