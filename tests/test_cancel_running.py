"""Cancelling running tasks with the thread pool: ``cancel(running=True)`` from another
process stops the task in its consumer thread, its attempt ends ``cancelled`` with its writes
rolled back, it is never retried, and a cancel racing the task's own end is decided by
whichever commits first. Real consumers, every database."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from asgiref.sync import async_to_sync

from firefly_tasks.models import TaskModel, TaskStatus, WorkerModel
from tests.conftest import Consumer, raises_in_threads, wait_until
from tests.testapp import tasks
from tests.testapp.models import Note

pytestmark = pytest.mark.slow

# A cancel reaches the consumer at its next heartbeat (NOTIFY on PostgreSQL): beat twice a
# second, and wait ten times as long as that and more.
FAST_BEAT = {"FIREFLY_HEARTBEAT_INTERVAL": 0.5, "FIREFLY_WORKER_TIMEOUT": 10}
WITHIN = 60


def outcomes(pk: int) -> list[str]:
    row = TaskModel.objects.get(pk=pk)
    return list(row.attempts.order_by("number").values_list("outcome", flat=True))


@raises_in_threads
def test_cancelling_a_running_loop_stops_it_rolls_it_back_and_the_next_task_runs(
    start_consumer: Callable[..., Consumer],
) -> None:
    looping = tasks.spin_then_note.using(max_retries=3).schedule(120, "looping")
    start_consumer("--concurrency", "1", **FAST_BEAT)
    wait_until(lambda: TaskModel.objects.filter(pk=looping.pk, status="running").exists(), WITHIN)
    after = tasks.add.schedule(2, 2)

    assert TaskModel.objects.filter(pk=looping.pk).cancel() == 0  # plain cancel: not running
    assert TaskModel.objects.filter(pk=looping.pk).cancel(running=True) == 1
    wait_until(lambda: TaskModel.objects.filter(pk=after.pk, status="completed").exists(), WITHIN)

    looping.refresh_from_db()
    assert (looping.status, outcomes(looping.pk)) == (TaskStatus.CANCELLED, ["cancelled"])
    assert not Note.objects.filter(text="looping").exists()  # stopped, never retried
    assert TaskModel.objects.get(pk=after.pk).returned == 4


def test_a_cancel_racing_the_tasks_end_leaves_one_outcome_each_time(
    start_consumer: Callable[..., Consumer], figure: Callable[..., None]
) -> None:
    # Each spins, then writes: a cancel lands while it spins (on SQLite too, where a task that
    # has written holds the only write lock until it ends) or between its write and its
    # completion, or after its completion.
    rows = tasks.spin_then_note.schedule_many(
        [(random.uniform(0, 0.02), f"note {i}") for i in range(300)]
    )
    # And, first, one for each thread that surely gets cancelled while it spins: claimed alone
    # (its runner has not timed the task yet), holding no lock, for ten heartbeats. Without
    # them a quick consumer could end all the short ones before a cancel reached one (it
    # reaches the consumer at a heartbeat, on SQLite and MariaDB).
    slow = tasks.spin_then_note.using(priority=10)
    rows += slow.schedule_many(
        [(FAST_BEAT["FIREFLY_HEARTBEAT_INTERVAL"] * 10, f"slow {i}") for i in range(3)]
    )
    ids = {row.pk for row in rows}
    start_consumer("--concurrency", "3", **FAST_BEAT)

    # Cancel whatever runs, again and again, while the consumer works through them.
    deadline = time.monotonic() + WITHIN * 3
    while TaskModel.objects.filter(pk__in=ids, status__in=("created", "running")).exists():
        assert time.monotonic() < deadline, "the tasks did not finish"
        TaskModel.objects.filter(pk__in=ids, status="running").cancel(running=True)
        time.sleep(random.uniform(0, 0.01))

    notes = set(Note.objects.values_list("text", flat=True))
    ended = {"completed": 0, "cancelled": 0}
    for row in TaskModel.objects.filter(pk__in=ids):
        text = row.params["args"][1]
        if row.status == TaskStatus.COMPLETED:
            assert outcomes(row.pk) == ["completed"] and text in notes, row.pk
        else:
            assert row.status == TaskStatus.CANCELLED, row.pk
            assert outcomes(row.pk) == ["cancelled"] and text not in notes, row.pk
        ended[row.status] += 1
    figure(**ended)
    assert ended["cancelled"] >= 3 and ended["completed"] > 0, ended


@raises_in_threads
def test_a_stopped_task_sees_its_cancel_requested(
    start_consumer: Callable[..., Consumer],
) -> None:
    row = tasks.spin_and_report_cancel.schedule(120)
    start_consumer("--concurrency", "1", **FAST_BEAT)
    wait_until(lambda: TaskModel.objects.filter(pk=row.pk, status="running").exists(), WITHIN)
    time.sleep(0.2)  # executing, not only claimed

    TaskModel.objects.filter(pk=row.pk).cancel(running=True)

    wait_until(lambda: Note.objects.exists(), WITHIN)
    assert list(Note.objects.values_list("text", flat=True)) == ["cancel_requested=True"]


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_cancelling_a_running_async_task_stops_it_at_its_await(
    start_consumer: Callable[..., Consumer], pool: str
) -> None:
    waiting = async_to_sync(tasks.async_wait_then_note.schedule)(120, "waited")
    start_consumer("--concurrency", "1", "--pool", pool, **FAST_BEAT)

    def executing() -> bool:  # at a heartbeat: not only claimed (then it would be skipped)
        reported = WorkerModel.objects.values_list("executing", flat=True)
        return any(task["id"] == waiting.pk for tasks in reported for task in tasks or [])

    wait_until(executing, WITHIN)
    after = tasks.add.schedule(2, 2)

    assert TaskModel.objects.filter(pk=waiting.pk).cancel(running=True) == 1
    wait_until(lambda: TaskModel.objects.filter(pk=after.pk, status="completed").exists(), WITHIN)

    waiting.refresh_from_db()
    assert (waiting.status, outcomes(waiting.pk)) == (TaskStatus.CANCELLED, ["cancelled"])
    assert not Note.objects.filter(text="waited").exists()
