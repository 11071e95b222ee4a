"""The ``consume_tasks`` command, run as real processes against the test database."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable

import pytest
from asgiref.sync import async_to_sync
from django.db.models import Count
from django.utils import timezone

from firefly_tasks.models import TaskAttempt, TaskModel, TaskStatus, WorkerModel, WorkerState
from tests.conftest import Consumer
from tests.testapp import tasks
from tests.testapp.models import Execution, Note

pytestmark = pytest.mark.slow


def test_four_consumers_run_every_task_exactly_once(
    start_consumer: Callable[..., Consumer],
) -> None:
    scheduled = tasks.record_execution.schedule_many([() for _ in range(2000)])
    consumers = [start_consumer("--burst") for _ in range(4)]
    for consumer in consumers:
        assert consumer.wait(240) == 0, consumer.output()

    assert TaskModel.objects.filter(status=TaskStatus.COMPLETED).count() == len(scheduled)
    runs = Execution.objects.values("task_id").annotate(n=Count("id"))
    assert runs.count() == len(scheduled)
    assert not runs.filter(n__gt=1).exists()
    assert TaskAttempt.objects.filter(outcome="completed").count() == len(scheduled)
    # Every consumer took part, so the claims really raced.
    pids = set(Execution.objects.values_list("pid", flat=True).distinct())
    assert pids <= {c.pid for c in consumers}
    assert len(pids) >= 2


def test_burst_exits_zero_after_failures_and_leaves_future_tasks(
    start_consumer: Callable[..., Consumer],
) -> None:
    tasks.always_fail.schedule()
    tasks.add.schedule(1, 2)
    future = tasks.add.schedule(3, 4, eta=timezone.now() + datetime.timedelta(hours=1))

    consumer = start_consumer("--burst")

    assert consumer.wait() == 0
    future.refresh_from_db()
    assert future.status == TaskStatus.CREATED
    assert TaskModel.objects.filter(func_name=tasks.add.name, status="completed").count() == 1
    # max_retries=2 with no delay: three attempts, then failed.
    failing = TaskModel.objects.get(func_name=tasks.always_fail.name)
    assert failing.status == TaskStatus.FAILED
    assert failing.attempts.count() == 3


def test_max_tasks_exits_after_that_many_attempts(start_consumer: Callable[..., Consumer]) -> None:
    tasks.write_note.schedule_many([(f"n{i}",) for i in range(5)])

    consumer = start_consumer("--max-tasks", "3")

    assert consumer.wait() == 0
    assert Note.objects.count() == 3
    assert TaskModel.objects.filter(status=TaskStatus.CREATED).count() == 2
    worker = WorkerModel.objects.get(pid=consumer.pid)
    assert worker.state == WorkerState.STOPPED
    assert worker.processed == 3


def test_priority_then_age_decides_the_order(start_consumer: Callable[..., Consumer]) -> None:
    tasks.write_note_later.schedule("later")
    tasks.write_note.schedule("normal-1")
    tasks.write_note_urgent.schedule("urgent")
    tasks.write_note.schedule("normal-2")

    assert start_consumer("--burst").wait() == 0

    assert list(Note.objects.order_by("id").values_list("text", flat=True)) == [
        "urgent",
        "normal-1",
        "normal-2",
        "later",
    ]


def test_eta_is_respected(start_consumer: Callable[..., Consumer]) -> None:
    soon = timezone.now() + datetime.timedelta(seconds=1.5)
    row = tasks.write_note.schedule("at eta", eta=soon)

    consumer = start_consumer("--max-tasks", "1")

    assert consumer.wait() == 0
    row.refresh_from_db()
    assert row.status == TaskStatus.COMPLETED
    assert row.started is not None
    assert row.started >= soon


def test_unknown_task_fails_without_blocking_the_task_behind_it(
    start_consumer: Callable[..., Consumer],
) -> None:
    stranded = TaskModel.objects.create(
        func_name="tests.testapp.tasks.moved_away", queue="default", params_data="[[],{}]"
    )
    not_a_task = TaskModel.objects.create(
        func_name="os.system", queue="default", params_data='[["touch /tmp/pwned"],{}]'
    )
    behind = tasks.write_note.schedule("behind")

    assert start_consumer("--burst").wait() == 0

    for row in (stranded, not_a_task):
        row.refresh_from_db()
        assert row.status == TaskStatus.FAILED
        assert "not a registered task" in row.error
    behind.refresh_from_db()
    assert behind.status == TaskStatus.COMPLETED


def test_failing_task_rolls_back_its_writes(start_consumer: Callable[..., Consumer]) -> None:
    row = tasks.write_note_then_fail.schedule("rolled back")
    async_to_sync(tasks.async_write_note_then_fail.schedule)("async rolled back")

    assert start_consumer("--burst").wait() == 0

    row.refresh_from_db()
    assert row.status == TaskStatus.FAILED
    assert "RuntimeError: failed after writing rolled back" in row.error
    assert "Traceback" in row.traceback
    assert not Note.objects.exists()


def test_retries_until_success_and_records_every_attempt(
    start_consumer: Callable[..., Consumer],
) -> None:
    row = tasks.fail_twice_then_succeed.schedule()

    assert start_consumer("--burst").wait() == 0

    row.refresh_from_db()
    assert row.status == TaskStatus.COMPLETED
    assert row.returned == 3
    assert row.retry_attempts == 2
    outcomes = list(row.attempts.order_by("number").values_list("outcome", flat=True))
    assert outcomes == ["failed", "failed", "completed"]


def test_async_tasks_run_in_the_consumer(start_consumer: Callable[..., Consumer]) -> None:
    summed = async_to_sync(tasks.async_add.schedule_many)([(1, 2), (3, 4)])
    noted = async_to_sync(tasks.async_write_note.schedule)("from async")

    assert start_consumer("--burst", "--concurrency", "2").wait() == 0

    assert [TaskModel.objects.get(pk=r.pk).returned for r in summed] == [3, 7]
    assert TaskModel.objects.get(pk=noted.pk).status == TaskStatus.COMPLETED
    assert Note.objects.get().text == "from async"


def test_consumer_only_takes_its_queues(start_consumer: Callable[..., Consumer]) -> None:
    tasks.write_note.schedule("default")
    other = tasks.write_note_other_queue.schedule("other")

    assert start_consumer("--burst").wait() == 0
    other.refresh_from_db()
    assert other.status == TaskStatus.CREATED

    assert start_consumer("--burst", "--queue", "other").wait() == 0
    other.refresh_from_db()
    assert other.status == TaskStatus.COMPLETED


def test_worker_registers_itself(start_consumer: Callable[..., Consumer]) -> None:
    consumer = start_consumer("--burst", "--worker-name", "reporting-1", "--concurrency", "3")
    assert consumer.wait() == 0

    worker = WorkerModel.objects.get(name="reporting-1")
    assert worker.pid == consumer.pid
    assert worker.hostname == os.uname().nodename
    assert worker.queues == ["default"]
    assert worker.concurrency == 3
    assert worker.state == WorkerState.STOPPED


def test_unknown_queue_is_refused_when_queues_are_restricted(
    start_consumer: Callable[..., Consumer],
) -> None:
    consumer = start_consumer("--burst", "--queue", "nope", FIREFLY_QUEUES=["default"])
    assert consumer.wait() == 1
    assert "not in FIREFLY_QUEUES" in consumer.output()
