"""Helpers for users' test suites: ``firefly_tasks.testing``."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from firefly_tasks.models import TaskModel, TaskStatus
from firefly_tasks.queues import pause_queue
from firefly_tasks.testing import run_pending_tasks
from tests.testapp import tasks
from tests.testapp.models import Note


def statuses() -> dict[str, int]:
    return {
        status: TaskModel.objects.filter(status=status).count()
        for status in TaskModel.objects.values_list("status", flat=True).distinct()
    }


def test_run_pending_tasks_runs_every_ready_task_and_counts_attempts(db: None) -> None:
    rows = tasks.add.schedule_many([(1, 2), (3, 4)])
    tasks.write_note.schedule("noted")

    assert run_pending_tasks() == 3

    assert [TaskModel.objects.get(pk=row.pk).returned for row in rows] == [3, 7]
    assert Note.objects.get().text == "noted"
    assert statuses() == {"completed": 3}


def test_run_pending_tasks_with_nothing_to_do_returns_zero(db: None) -> None:
    assert run_pending_tasks() == 0


def test_run_pending_tasks_runs_tasks_scheduled_by_tasks(db: None) -> None:
    parent = tasks.schedule_child.schedule(21)

    assert run_pending_tasks() == 2

    child_pk = TaskModel.objects.get(pk=parent.pk).returned
    child = TaskModel.objects.get(pk=child_pk)
    assert child.func_name == tasks.add.name
    assert child.status == TaskStatus.COMPLETED
    assert child.returned == 42


def test_run_pending_tasks_runs_every_queue_by_default(db: None) -> None:
    other = tasks.write_note_other_queue.schedule("other")
    default = tasks.write_note.schedule("default")

    assert run_pending_tasks() == 2

    assert TaskModel.objects.get(pk=other.pk).status == TaskStatus.COMPLETED
    assert TaskModel.objects.get(pk=default.pk).status == TaskStatus.COMPLETED


@override_settings(FIREFLY_DEFAULT_QUEUE="elsewhere")
def test_run_pending_tasks_default_queues_do_not_depend_on_the_default_queue(db: None) -> None:
    row = tasks.write_note_other_queue.schedule("other")

    assert run_pending_tasks() == 1
    assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.COMPLETED


def test_run_pending_tasks_only_runs_the_queues_asked_for(db: None) -> None:
    other = tasks.write_note_other_queue.schedule("other")
    default = tasks.write_note.schedule("default")

    assert run_pending_tasks(["other"]) == 1

    assert TaskModel.objects.get(pk=other.pk).status == TaskStatus.COMPLETED
    assert TaskModel.objects.get(pk=default.pk).status == TaskStatus.CREATED


def test_run_pending_tasks_stops_at_the_limit(db: None) -> None:
    tasks.add.schedule_many([(i, i) for i in range(5)])

    assert run_pending_tasks(limit=2) == 2

    assert statuses() == {"completed": 2, "created": 3}


def test_run_pending_tasks_leaves_future_tasks_alone(db: None) -> None:
    future = tasks.add.schedule(1, 2, eta=timezone.now() + datetime.timedelta(hours=1))

    assert run_pending_tasks() == 0

    assert TaskModel.objects.get(pk=future.pk).status == TaskStatus.CREATED


def test_run_pending_tasks_leaves_paused_queues_alone(db: None) -> None:
    tasks.write_note_other_queue.schedule("paused")
    ready = tasks.write_note.schedule("ready")
    pause_queue("other")

    assert run_pending_tasks() == 1

    assert TaskModel.objects.get(pk=ready.pk).status == TaskStatus.COMPLETED
    assert statuses() == {"completed": 1, "created": 1}


@pytest.mark.skipif(connection.vendor == "sqlite", reason="claims that skip locked rows")
def test_run_pending_tasks_claims_again_a_row_another_transaction_held(
    transactional_db: None,
) -> None:
    # A waiter marking the row awaited holds it for a moment: the claim skips it then, and
    # run_pending_tasks() must not take that for an empty queue.
    row = tasks.add.schedule(2, 3)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                TaskModel.objects.select_for_update().get(pk=row.pk)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(30)
    threading.Timer(0.2, release.set).start()

    assert run_pending_tasks() == 1

    holder.join(30)
    assert TaskModel.objects.get(pk=row.pk).returned == 5


def test_run_pending_tasks_retries_until_retries_run_out(db: None) -> None:
    succeeding = tasks.fail_twice_then_succeed.schedule()
    failing = tasks.always_fail.schedule()

    assert run_pending_tasks() == 6

    succeeding.refresh_from_db()
    assert succeeding.status == TaskStatus.COMPLETED
    assert succeeding.returned == 3
    failing.refresh_from_db()
    assert failing.status == TaskStatus.FAILED
    assert failing.attempts.count() == 3


def test_run_pending_tasks_does_not_wait_for_retry_delays(db: None) -> None:
    row = tasks.fail_with_delay.schedule()

    assert run_pending_tasks() == 1

    row.refresh_from_db()
    assert row.status == TaskStatus.CREATED
    assert row.retry_attempts == 1
