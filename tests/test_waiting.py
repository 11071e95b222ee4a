"""``wait_result()`` and ``await_result()``: they return once the task finished (a consumer's
thread finishing it meanwhile), say when it did not, and refuse to wait where waiting cannot
work. Latency: bench/wait_latency.py."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.db import connection, transaction

from firefly_tasks.exceptions import TaskFailedError
from firefly_tasks.models import TaskModel
from firefly_tasks.testing import run_pending_tasks
from firefly_tasks.waiting import ResultTimeout, WaitError
from tests.conftest import run_pending_in_thread
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_wait_result_returns_the_result_once_another_thread_completed_it() -> None:
    row = tasks.add.schedule(2, 3)
    runner = run_pending_in_thread(0.3)
    began = time.monotonic()
    assert row.wait_result(timeout=30) == 5
    runner.join(30)
    assert time.monotonic() - began >= 0.3  # it waited for the run
    assert row.status == "completed"


def test_a_failed_task_returns_none_or_raises_when_asked() -> None:
    row = tasks.always_fail.schedule()
    run_pending_tasks()
    assert row.wait_result(timeout=1) is None
    with pytest.raises(TaskFailedError) as raised:
        row.wait_result(timeout=1, raise_on_failure=True)
    assert raised.value.task.pk == row.pk and "failed" in str(raised.value)


def test_a_task_not_finished_in_time_raises_result_timeout() -> None:
    row = tasks.add.schedule(1, 1)
    began = time.monotonic()
    with pytest.raises(ResultTimeout, match="still created"):
        row.wait_result(timeout=0.2)
    assert time.monotonic() - began >= 0.2


def test_await_result_waits_in_async_code() -> None:
    row = tasks.add.schedule(4, 4)
    runner = run_pending_in_thread(0.2)
    assert asyncio.run(row.await_result(timeout=30)) == 8
    runner.join(30)


def test_waiting_inside_a_task_is_refused() -> None:
    other = tasks.add.schedule(1, 1)
    waiter = tasks.wait_inside.using(priority=10).schedule(other.pk)
    run_pending_tasks()
    waiter.refresh_from_db()
    assert waiter.status == "failed"
    assert "WaitError" in waiter.error and "inside a task" in waiter.error


def test_waiting_for_a_row_this_transaction_scheduled_is_refused() -> None:
    with transaction.atomic():
        row = tasks.add.schedule(1, 1)
        with pytest.raises(WaitError, match="scheduled in this transaction"):
            row.wait_result(timeout=0.1)
    assert row.uncommitted is False  # committed now
    with pytest.raises(ResultTimeout):
        row.wait_result(timeout=0.1)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_on_postgresql_the_waiter_marks_the_row_awaited() -> None:
    row = tasks.add.schedule(1, 1)
    with pytest.raises(ResultTimeout):
        row.wait_result(timeout=0.05)
    assert TaskModel.objects.get(pk=row.pk).awaited is True
    assert TaskModel.objects.filter(awaited=True).count() == 1
