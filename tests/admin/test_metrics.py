"""The dashboard's numbers, computed in a few queries whatever the size of the tables."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, Settings

from firefly_admin.metrics import (
    CHART_HEIGHT,
    WORKER_LIMIT,
    QueueCatalog,
    liveness,
    queue_stats,
    worker_statuses,
)
from firefly_admin.throughput import MINUTES
from firefly_tasks.models import TaskStatus, WorkerModel, WorkerState
from firefly_tasks.queues import pause_queue
from tests.admin.conftest import make_rollup, make_task, make_worker

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
    make_rollup(timezone.now(), queue="other", completed=1)
    pause_queue("maintenance")
    with django_assert_num_queries(4):  # control rows, depths, executing, rollups
        stats = queue_stats()
    assert {queue.name for queue in stats} >= {"default", "other", "maintenance"}
    assert [queue.name for queue in stats if queue.paused] == ["maintenance"]


def test_completions_land_in_their_minute_of_the_last_hour_summed_over_writers() -> None:
    now = timezone.now()
    for minutes_ago, count in ((0, 3), (10, 1), (59, 2), (61, 5)):
        minute = now - datetime.timedelta(minutes=minutes_ago)
        make_rollup(minute, completed=count - 1, run_seconds=0.5)
        make_rollup(minute, slot=1, completed=1, failed=1, wait_seconds=2.0)

    default = next(queue for queue in queue_stats(now) if queue.name == "default")

    assert len(default.per_minute) == MINUTES
    assert default.per_minute[-1] == 3
    assert default.per_minute[-11] == 1
    assert default.per_minute[0] == 2
    assert default.completed_last_hour == 6
    assert default.failed_last_hour == 3  # the rollups of 61 minutes ago are out
    assert default.window.attempts == 9
    assert default.window.mean_wait == datetime.timedelta(seconds=6.0 / 9)
    assert default.window.mean_run == datetime.timedelta(seconds=1.5 / 9)
    tallest = max(default.bars, key=lambda bar: bar.height)
    assert tallest.count == 3 and tallest.y == CHART_HEIGHT - tallest.height


def test_throughput_reads_the_rollups_not_the_task_table() -> None:
    now = timezone.now()
    make_task(TaskStatus.COMPLETED, completed=now)  # its rollup was never written: not counted
    make_task(TaskStatus.FAILED, failed=now)
    make_rollup(now, queue="pruned", completed=4)  # its tasks are gone: still counted

    stats = {queue.name: queue for queue in queue_stats(now)}

    assert stats["default"].completed_last_hour == 0
    assert stats["default"].failed_last_hour == 0
    assert stats["pruned"].completed_last_hour == 4
    assert not stats["pruned"].known


def test_running_tasks_are_split_into_executing_and_claimed() -> None:
    now = timezone.now()
    busy = make_worker("busy", concurrency=2)
    rows = [make_task(TaskStatus.RUNNING, worker=busy) for _ in range(5)]
    snapshot = [{"id": rows[0].pk, "name": "n", "queue": "default", "started": now.isoformat()}]
    WorkerModel.objects.filter(pk=busy.pk).update(executing=snapshot)
    gone = make_worker("gone", last_heartbeat=now - datetime.timedelta(minutes=5))
    stale = [{"id": rows[1].pk, "name": "n", "queue": "default", "started": now.isoformat()}]
    WorkerModel.objects.filter(pk=gone.pk).update(executing=stale)  # dead: not counted

    default = next(queue for queue in queue_stats(now) if queue.name == "default")

    assert (default.running, default.executing, default.claimed) == (5, 1, 4)


def test_executing_tasks_are_counted_past_the_workers_the_dashboard_lists() -> None:
    """With ``WORKER_LIMIT`` workers or more, the list stops at the latest started: the live
    worker started first is not in it, and its executing task still counts."""
    now = timezone.now()
    first = make_worker("first", started=now - datetime.timedelta(hours=2))
    row = make_task(TaskStatus.RUNNING, worker=first)
    snapshot = [{"id": row.pk, "name": "n", "queue": "default", "started": now.isoformat()}]
    WorkerModel.objects.filter(pk=first.pk).update(executing=snapshot)
    for index in range(WORKER_LIMIT):
        make_worker(f"later-{index}", started=now - datetime.timedelta(minutes=1))
    catalog = QueueCatalog.load()

    listed = catalog.workers(now)  # as the whole page reads them, before the queues
    default = next(queue for queue in queue_stats(now, catalog) if queue.name == "default")

    assert "first" not in {status.worker.name for status in listed}
    assert (default.running, default.executing) == (1, 1)


def test_a_snapshot_start_that_is_no_date_leaves_the_queue_counts_whole() -> None:
    now = timezone.now()
    busy = make_worker("busy")
    row = make_task(TaskStatus.RUNNING, worker=busy)
    snapshot = [{"id": row.pk, "name": "n", "queue": "default", "started": "2026-02-30T10:00"}]
    WorkerModel.objects.filter(pk=busy.pk).update(executing=snapshot)

    default = next(queue for queue in queue_stats(now) if queue.name == "default")
    (status,) = worker_statuses(now)

    assert (default.running, default.executing) == (1, 1)
    assert status.executing[0]["started"] is None


def test_oldest_ready_ignores_scheduled_tasks() -> None:
    now = timezone.now()
    make_task(TaskStatus.CREATED, not_before=now - datetime.timedelta(seconds=90))
    make_task(TaskStatus.CREATED, not_before=now + datetime.timedelta(hours=1))

    default = next(queue for queue in queue_stats(now) if queue.name == "default")

    assert default.ready == 1 and default.scheduled == 1
    assert default.oldest_ready_age is not None
    assert 89 <= default.oldest_ready_age.total_seconds() <= 91


def test_worker_statuses_skip_old_stopped_workers_and_tell_executing_from_claimed(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    now = timezone.now()
    busy = make_worker("busy", concurrency=2)
    make_worker("old", state=WorkerState.STOPPED, last_heartbeat=now - datetime.timedelta(days=2))
    rows = [make_task(TaskStatus.RUNNING, worker=busy) for _ in range(4)]
    snapshot = [
        {"id": row.pk, "name": row.func_name, "queue": "default", "started": now.isoformat()}
        for row in rows[:2]
    ]
    WorkerModel.objects.filter(pk=busy.pk).update(executing=snapshot)

    with django_assert_num_queries(2):
        statuses = worker_statuses(now)

    assert [status.worker.name for status in statuses] == ["busy"]
    (status,) = statuses
    assert [task["id"] for task in status.executing] == [rows[0].pk, rows[1].pk]
    assert status.executing[0]["started"] == now
    assert (status.holding, status.claimed) == (4, 2)


def test_a_worker_snapshot_of_another_shape_is_ignored() -> None:
    now = timezone.now()
    worker = make_worker("odd")
    WorkerModel.objects.filter(pk=worker.pk).update(executing={"not": "a list"})
    make_task(TaskStatus.RUNNING, worker=worker)

    (status,) = worker_statuses(now)

    assert status.executing == [] and status.claimed == 1
