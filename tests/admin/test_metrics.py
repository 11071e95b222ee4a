"""The dashboard's numbers, computed in a few queries whatever the size of the tables."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, Settings

from firefly_admin.metrics import CHART_HEIGHT, MINUTES, liveness, queue_stats, worker_statuses
from firefly_tasks.models import TaskStatus, WorkerModel, WorkerState
from firefly_tasks.queues import pause_queue
from tests.admin.conftest import make_task, make_worker

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("silent", "state", "expected"),
    [
        (0, WorkerState.RUNNING, "alive"),
        (9.9, WorkerState.RUNNING, "alive"),  # one heartbeat may be in flight
        (10.1, WorkerState.RUNNING, "late"),
        (30, WorkerState.RUNNING, "late"),
        (30.1, WorkerState.RUNNING, "dead"),
        (0, WorkerState.STOPPING, "alive"),
        (0, WorkerState.DEAD, "dead"),
        (0, WorkerState.STOPPED, "stopped"),
    ],
)
def test_liveness_compares_the_last_heartbeat_with_interval_and_timeout(
    settings: Settings, silent: float, state: WorkerState, expected: str
) -> None:
    settings.FIREFLY_HEARTBEAT_INTERVAL = 5
    settings.FIREFLY_WORKER_TIMEOUT = 30
    now = timezone.now()
    worker = WorkerModel(state=state, last_heartbeat=now - datetime.timedelta(seconds=silent))
    assert liveness(worker, now) == expected


def test_queue_stats_run_four_queries(django_assert_num_queries: DjangoAssertNumQueries) -> None:
    make_task(TaskStatus.CREATED)
    make_task(TaskStatus.COMPLETED, queue="other")
    pause_queue("maintenance")
    with django_assert_num_queries(4):  # control rows, depths, failures, completions
        stats = queue_stats()
    assert {queue.name for queue in stats} >= {"default", "other", "maintenance"}
    assert [queue.name for queue in stats if queue.paused] == ["maintenance"]


def test_completions_land_in_their_minute_of_the_last_hour() -> None:
    now = timezone.now()
    for minutes_ago, count in ((0, 3), (10, 1), (59, 2), (61, 5)):
        for _ in range(count):
            make_task(TaskStatus.COMPLETED, completed=now - datetime.timedelta(minutes=minutes_ago))

    default = next(queue for queue in queue_stats(now) if queue.name == "default")

    assert len(default.per_minute) == MINUTES
    assert default.per_minute[-1] == 3
    assert default.per_minute[-11] == 1
    assert default.per_minute[0] == 2
    assert default.completed_last_hour == 6
    tallest = max(default.bars, key=lambda bar: bar.height)
    assert tallest.count == 3 and tallest.y == CHART_HEIGHT - tallest.height


def test_oldest_ready_ignores_scheduled_tasks() -> None:
    now = timezone.now()
    make_task(TaskStatus.CREATED, not_before=now - datetime.timedelta(seconds=90))
    make_task(TaskStatus.CREATED, not_before=now + datetime.timedelta(hours=1))

    default = next(queue for queue in queue_stats(now) if queue.name == "default")

    assert default.ready == 1 and default.scheduled == 1
    assert default.oldest_ready_age is not None
    assert 89 <= default.oldest_ready_age.total_seconds() <= 91


def test_worker_statuses_skip_old_stopped_workers_and_list_running_tasks(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    now = timezone.now()
    busy = make_worker("busy", concurrency=2)
    make_worker("old", state=WorkerState.STOPPED, last_heartbeat=now - datetime.timedelta(days=2))
    first = make_task(TaskStatus.RUNNING, worker=busy)
    second = make_task(TaskStatus.RUNNING, worker=busy)

    with django_assert_num_queries(2):
        statuses = worker_statuses(now)

    assert [status.worker.name for status in statuses] == ["busy"]
    assert [row["pk"] for row in statuses[0].current] == [first.pk, second.pk]
