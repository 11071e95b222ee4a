"""Claims sent ahead: a worker thread claims its next batch of fast tasks while it runs one."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import pytest
from django.db import connection

from firefly_tasks.batches import BatchRunner
from firefly_tasks.budget import Budget
from firefly_tasks.claims import Claims
from firefly_tasks.leftovers import Leftovers
from firefly_tasks.models import TaskModel, TaskStatus, WorkerModel
from firefly_tasks.worker import Worker
from tests.conftest import Consumer, wait_until
from tests.test_worker import INFO_LOGGING
from tests.testapp import tasks
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker() -> WorkerModel:
    return WorkerModel.objects.create(name="claims-test", hostname="here", pid=1)


def claims_for(worker: WorkerModel, budget: Budget | None = None) -> Claims:
    leftovers = Leftovers(worker)
    return Claims(["default"], worker.pk, budget or Budget(None), leftovers, ahead=True, name="t")


def test_a_claim_is_sent_ahead_only_after_a_full_one_and_for_batches(worker: WorkerModel) -> None:
    tasks.noop.schedule_many([() for _ in range(5)])
    claims = claims_for(worker)
    try:
        assert len(claims.claim(2) or []) == 2  # full: the queue had more
        claims.send_ahead(1, 0)  # one at a time: slow tasks, nothing sent ahead
        assert claims.collect() is None
        claims.send_ahead(2, 0)
        ahead, revivals = claims.collect() or ([], -1)
        assert [row.status for row in ahead] == [TaskStatus.RUNNING] * 2
        assert revivals == 0
        assert len(claims.claim(5) or []) == 1  # not full: the queue is empty now
        claims.send_ahead(5, 0)
        assert claims.collect() is None
    finally:
        claims.close()


def test_a_batch_claimed_ahead_goes_back_to_the_queue_if_the_thread_stops(
    worker: WorkerModel,
) -> None:
    rows = tasks.noop.schedule_many([() for _ in range(4)])
    budget = Budget(10)
    claims = claims_for(worker, budget)
    claims.claim(2)
    claims.send_ahead(2, 0)
    wait_until(lambda: len(claims.ahead()) == 2)
    ahead = {row.pk for row in claims.ahead()}

    claims.close()
    claims.leftovers.put_back()

    released = TaskModel.objects.filter(pk__in=ahead)
    assert {(r.status, r.attempt, r.worker_id) for r in released} == {(TaskStatus.CREATED, 0, None)}
    assert ahead == {row.pk for row in rows[2:]}  # in run order: the later two
    assert budget.take(100) == 8  # the two run now; the two given back count again


def test_a_claim_that_lands_after_its_thread_was_fenced_goes_back_by_itself(
    worker: WorkerModel,
) -> None:
    """A stuck thread may never come back to give back what it claimed ahead; a fence that
    came while the claim was on its way found no rows to release."""
    tasks.noop.schedule_many([() for _ in range(4)])
    fenced = threading.Event()
    claims = Claims(
        ["default"],
        worker.pk,
        Budget(None),
        Leftovers(worker),
        ahead=True,
        name="t",
        fenced=fenced.is_set,
    )
    try:
        claims.claim(2)
        fenced.set()
        claims.send_ahead(2, 0)
        wait_until(lambda: len(claims.ahead()) == 2, timeout=10)
        ahead = [row.pk for row in claims.ahead()]
        back = TaskModel.objects.filter(pk__in=ahead, status=TaskStatus.CREATED, attempt=0)
        wait_until(lambda: back.count() == 2, timeout=10)
    finally:
        claims.close()
    claims.leftovers.put_back()  # the thread, back: releasing again takes nothing

    assert back.count() == 2


def test_releasing_a_row_twice_never_takes_it_from_a_later_claim(worker: WorkerModel) -> None:
    """A fence releases the rest of a stuck thread's batch; the thread, back, releases it
    again: by then another claim may hold a row, at the very attempt number."""
    tasks.noop.schedule()
    (first,) = TaskModel.objects.claim(["default"], 1, worker.pk)
    assert TaskModel.objects.release([first]) == 1
    other = WorkerModel.objects.create(name="other", hostname="here", pid=2)
    (again,) = TaskModel.objects.claim(["default"], 1, other.pk)
    assert (again.pk, again.attempt) == (first.pk, first.attempt)

    assert TaskModel.objects.release([first]) == 0

    again.refresh_from_db()
    assert (again.status, again.worker_id) == (TaskStatus.RUNNING, other.pk)


def test_the_fence_and_an_interrupt_see_the_rows_claimed_ahead(worker: WorkerModel) -> None:
    tasks.noop.schedule_many([() for _ in range(4)])
    consumer = Worker(["default"])
    consumer.row = worker
    runner = BatchRunner(worker, threading.Event())
    claims = claims_for(worker)
    consumer._runners.append(runner)
    consumer._claims[runner.thread] = claims
    try:
        batch = claims.claim(2) or []
        consumer._running[runner.thread] = batch
        claims.send_ahead(2, 0)
        wait_until(lambda: len(claims.ahead()) == 2)

        held = consumer.held_by(runner.thread)

        assert held is not None
        assert [row.pk for row in held[1]] == [row.pk for row in batch + claims.ahead()]
    finally:
        claims.close()


def test_a_task_cancelled_while_its_batch_waited_ahead_does_not_run(worker: WorkerModel) -> None:
    tasks.noop.schedule_many([() for _ in range(3)])
    runner = BatchRunner(worker, threading.Event())
    rows = TaskModel.objects.claim(["default"], 3, worker.pk)
    runner.drop(rows[1])  # heard while the batch was claimed ahead, before it ran

    outcomes, not_run = runner.run(rows)

    assert outcomes == ["completed", "completed"]
    assert [row.pk for row in not_run] == [rows[1].pk]


def test_a_task_cancelled_then_requeued_runs_when_the_same_thread_claims_it_again(
    worker: WorkerModel,
) -> None:
    """What a thread was told not to start is the cancelled attempt, not the task."""
    (row,) = tasks.record_execution.schedule_many([()])
    runner = BatchRunner(worker, threading.Event())
    first = TaskModel.objects.claim(["default"], 1, worker.pk)
    TaskModel.objects.filter(pk=row.pk).cancel(running=True)
    runner.drop(first[0])
    assert runner.run(first) == ([], first)

    assert TaskModel.objects.filter(pk=row.pk).requeue() == 1
    again = TaskModel.objects.claim(["default"], 1, worker.pk)
    outcomes, not_run = runner.run(again)

    assert (outcomes, not_run) == (["completed"], [])
    assert Execution.objects.count() == 1


@pytest.mark.slow
def test_sigterm_while_a_batch_waits_ahead_leaves_no_task_claimed(
    start_consumer: Callable[..., Consumer],
) -> None:
    """A consumer stopped mid-drain gives back the batch it had claimed ahead; on SQLite,
    which claims nothing ahead, it has nothing to give back. Nothing stays claimed either way,
    and every task that ran ran once."""
    tasks.sleep_for.schedule_many([(0.002,) for _ in range(3000)])
    consumer = start_consumer(
        LOGGING=INFO_LOGGING, FIREFLY_GROUP_COMMIT_WINDOW=0.05, FIREFLY_CLAIM_AHEAD=True
    )
    wait_until(lambda: TaskModel.objects.filter(status=TaskStatus.COMPLETED).count() >= 300)

    consumer.signal(signal.SIGTERM)
    assert consumer.wait(60) == 0

    assert not TaskModel.objects.filter(status=TaskStatus.RUNNING).exists()
    completed = TaskModel.objects.filter(status=TaskStatus.COMPLETED)
    assert set(completed.values_list("attempt", flat=True)) == {1}
    assert TaskModel.objects.filter(status=TaskStatus.CREATED, attempt=0).count() == (
        3000 - completed.count()
    )
    gave_back = "claimed ahead, not run" in consumer.output()
    assert gave_back == (connection.vendor != "sqlite"), consumer.output()


@pytest.mark.slow
def test_with_claims_ahead_off_a_stopped_consumer_has_none_to_give_back(
    start_consumer: Callable[..., Consumer],
) -> None:
    tasks.sleep_for.schedule_many([(0.002,) for _ in range(3000)])
    consumer = start_consumer(
        FIREFLY_CLAIM_AHEAD=False,
        FIREFLY_GROUP_COMMIT_WINDOW=0.05,
        LOGGING=INFO_LOGGING,
    )
    wait_until(lambda: TaskModel.objects.filter(status=TaskStatus.COMPLETED).count() >= 300)

    consumer.signal(signal.SIGTERM)
    assert consumer.wait(60) == 0

    assert not TaskModel.objects.filter(status=TaskStatus.RUNNING).exists()
    assert "claimed ahead" not in consumer.output()
