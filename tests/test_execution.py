"""Running one claimed task: ``firefly_tasks.executor``."""

from __future__ import annotations

import datetime
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, connections
from django.db.models import F
from django.test import override_settings
from django.utils import timezone

from firefly_tasks import current_task
from firefly_tasks.attempts import retry_delay
from firefly_tasks.execution import run_alone
from firefly_tasks.models import (
    AttemptOutcome,
    TaskAttempt,
    TaskModel,
    TaskStatus,
    WorkerModel,
)
from tests.testapp import tasks
from tests.testapp.models import Execution, Note


def claim(
    row: TaskModel, now: datetime.datetime | None = None, worker_id: int | None = None
) -> TaskModel:
    claimed: list[TaskModel] = TaskModel.objects.claim([row.queue], 1, worker_id, now=now)
    assert [c.pk for c in claimed] == [row.pk]
    return claimed[0]


def stored(row: TaskModel) -> TaskModel:
    return TaskModel.objects.get(pk=row.pk)


@pytest.fixture
def worker(db: None) -> WorkerModel:
    return WorkerModel.objects.create(name="unit-worker", hostname="localhost", pid=1)


# Completion ---------------------------------------------------------------------------------


def test_completed_task_stores_its_result_and_one_attempt(worker: WorkerModel) -> None:
    row = tasks.add.schedule(1, 3)
    claimed = claim(row, worker_id=worker.pk)

    assert run_alone(claimed, worker) == "completed"

    done = stored(row)
    assert done.status == TaskStatus.COMPLETED
    assert done.returned == 4
    assert done.returned_preview == "4"
    assert done.started is not None and done.completed is not None
    assert done.started <= done.completed
    assert done.error == ""
    attempt = done.attempts.get()
    assert attempt.number == 1
    assert attempt.outcome == AttemptOutcome.COMPLETED
    assert attempt.worker_id == worker.pk
    assert attempt.worker_name == "unit-worker"
    # The attempt starts when the task does, after its claim (the row's ``started``).
    assert attempt.started is not None
    assert done.started <= attempt.started <= attempt.finished
    assert attempt.finished == done.completed


def test_completed_task_keeps_its_writes(db: None) -> None:
    row = tasks.write_note.schedule("kept")

    assert run_alone(claim(row)) == "completed"

    assert Note.objects.get().text == "kept"


def test_async_task_runs_and_keeps_its_writes(db: None) -> None:
    noted = async_to_sync(tasks.async_write_note.schedule)("from async")

    assert run_alone(claim(noted)) == "completed"

    assert stored(noted).returned == "from async"
    assert Note.objects.get().text == "from async"


def test_current_task_is_the_running_tasks_context_during_the_run_and_none_after(db: None) -> None:
    row = tasks.current_task_state.schedule()
    assert current_task() is None

    run_alone(claim(row))

    name = tasks.current_task_state.name
    assert stored(row).returned == [row.pk, row.pk, 1, "default", name, TaskStatus.RUNNING]
    assert current_task() is None


def test_current_task_is_visible_inside_async_tasks(db: None) -> None:
    row = async_to_sync(tasks.async_current_task_id.schedule)()

    assert run_alone(claim(row)) == "completed"

    assert stored(row).returned == row.pk


def test_current_task_is_visible_to_non_atomic_tasks(db: None) -> None:
    row = tasks.record_execution.schedule()

    run_alone(claim(row))

    execution = Execution.objects.get()
    assert (execution.task_id, execution.attempt) == (row.pk, 1)


# Failure and transactions -------------------------------------------------------------------


def test_failing_task_rolls_back_its_writes_and_records_the_error(db: None) -> None:
    row = tasks.write_note_then_fail.schedule("rolled back")

    assert run_alone(claim(row)) == "failed"

    failed = stored(row)
    assert failed.status == TaskStatus.FAILED
    assert failed.failed is not None
    assert failed.error == "RuntimeError: failed after writing rolled back"
    assert "Traceback" in failed.traceback
    assert "write_note_then_fail" in failed.traceback
    assert not Note.objects.exists()
    attempt = failed.attempts.get()
    assert attempt.outcome == AttemptOutcome.FAILED
    assert attempt.error == failed.error


def test_failing_async_task_rolls_back_its_writes(db: None) -> None:
    row = async_to_sync(tasks.async_write_note_then_fail.schedule)("async rolled back")

    assert run_alone(claim(row)) == "failed"

    assert stored(row).error == "RuntimeError: async failure"
    assert not Note.objects.exists()


def test_failing_non_atomic_task_keeps_its_writes(db: None) -> None:
    row = tasks.write_note_then_fail_non_atomic.schedule("kept anyway")

    assert run_alone(claim(row)) == "failed"

    assert stored(row).status == TaskStatus.FAILED
    assert Note.objects.get().text == "kept anyway"


def test_unserializable_return_value_fails_the_task(db: None) -> None:
    row = tasks.unserializable_result.schedule()

    assert run_alone(claim(row)) == "failed"

    failed = stored(row)
    assert failed.status == TaskStatus.FAILED
    assert failed.error.startswith("SerializationError: the return value is a object")
    assert failed.returned_data is None
    assert failed.attempts.get().outcome == AttemptOutcome.FAILED


def test_undecodable_params_fail_the_task_without_retry(db: None) -> None:
    row = TaskModel.objects.create(
        func_name=tasks.always_fail.name, queue="default", params_data="{not json", max_retries=2
    )

    assert run_alone(claim(row)) == "failed"

    failed = stored(row)
    assert failed.status == TaskStatus.FAILED
    assert failed.retry_attempts == 0
    assert failed.error.startswith("SerializationError: Stored json payload cannot be decoded")
    assert failed.attempts.get().outcome == AttemptOutcome.FAILED


def test_unknown_task_fails_without_retry(db: None) -> None:
    row = TaskModel.objects.create(
        func_name="tests.testapp.tasks.moved_away",
        queue="default",
        params_data="[[],{}]",
        max_retries=5,
    )

    assert run_alone(claim(row)) == "failed"

    failed = stored(row)
    assert failed.status == TaskStatus.FAILED
    assert failed.retry_attempts == 0
    assert failed.error.startswith("UnknownTaskError:")


# Retries ------------------------------------------------------------------------------------


def test_failure_with_retries_left_returns_the_task_after_retry_delay(db: None) -> None:
    row = tasks.fail_with_delay.schedule()
    before = timezone.now()

    assert run_alone(claim(row)) == "retry"

    waiting = stored(row)
    assert waiting.status == TaskStatus.CREATED
    assert waiting.retry_attempts == 1
    assert waiting.worker_id is None
    assert waiting.error == "ValueError: try again in a minute"
    assert before + datetime.timedelta(seconds=60) <= waiting.not_before
    assert waiting.not_before <= timezone.now() + datetime.timedelta(seconds=60)
    assert waiting.attempts.get().outcome == AttemptOutcome.FAILED
    assert TaskModel.objects.claim(["default"], 10) == []


def test_last_retry_failing_fails_the_task_and_keeps_every_attempt(db: None) -> None:
    row = tasks.fail_with_delay.schedule()
    run_alone(claim(row))

    later = stored(row).not_before + datetime.timedelta(seconds=1)
    assert run_alone(claim(row, now=later)) == "failed"

    failed = stored(row)
    assert failed.status == TaskStatus.FAILED
    assert failed.retry_attempts == 1
    assert list(failed.attempts.order_by("number").values_list("number", "outcome")) == [
        (1, AttemptOutcome.FAILED),
        (2, AttemptOutcome.FAILED),
    ]


def run_failures(row: TaskModel, count: int) -> list[float]:
    """Run ``row`` ``count`` times, each as soon as it is due; the retry delays it got."""
    delays = []
    for _ in range(count):
        claimed = claim(row, now=stored(row).not_before)
        before = timezone.now()
        assert run_alone(claimed) == "retry"
        delays.append((stored(row).not_before - before).total_seconds())
    return delays


def test_retry_backoff_doubles_the_delay_on_each_retry(db: None) -> None:
    row = tasks.fail_with_backoff.schedule()

    delays = run_failures(row, 4)

    for delay, expected in zip(delays, [10, 20, 40, 80], strict=True):
        assert expected <= delay < expected + 5


@override_settings(FIREFLY_RETRY_BACKOFF_MAX=25)
def test_retry_backoff_is_capped_by_firefly_retry_backoff_max(db: None) -> None:
    row = tasks.fail_with_backoff.schedule()

    delays = run_failures(row, 3)

    for delay, expected in zip(delays, [10, 20, 25], strict=True):
        assert expected <= delay < expected + 5


def test_retry_delay_is_fixed_without_backoff() -> None:
    row = TaskModel(retry_delay=30, retry_backoff=False, retry_attempts=3)

    assert retry_delay(row) == datetime.timedelta(seconds=30)


# Fencing ------------------------------------------------------------------------------------


def test_completion_of_a_superseded_attempt_writes_nothing_and_rolls_back(db: None) -> None:
    row = tasks.write_note.schedule("late")
    claimed = claim(row)
    TaskModel.objects.filter(pk=row.pk).update(attempt=F("attempt") + 1)

    assert run_alone(claimed) == "fenced"

    current = stored(row)
    assert current.status == TaskStatus.RUNNING
    assert current.attempt == 2
    assert current.completed is None
    assert current.returned_data is None
    assert not Note.objects.exists()
    assert not TaskAttempt.objects.exists()


def test_failure_of_a_superseded_attempt_writes_nothing(db: None) -> None:
    row = tasks.fail_with_delay.schedule()
    claimed = claim(row)
    TaskModel.objects.filter(pk=row.pk).update(attempt=F("attempt") + 1)

    assert run_alone(claimed) == "fenced"

    current = stored(row)
    assert current.status == TaskStatus.RUNNING
    assert current.retry_attempts == 0
    assert current.error == ""
    assert not TaskAttempt.objects.exists()


def test_completion_of_a_task_no_longer_running_writes_nothing(db: None) -> None:
    row = tasks.write_note.schedule("cancelled meanwhile")
    claimed = claim(row)
    TaskModel.objects.filter(pk=row.pk).update(status=TaskStatus.CANCELLED)

    assert run_alone(claimed) == "fenced"

    assert stored(row).status == TaskStatus.CANCELLED
    assert not Note.objects.exists()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's single write lock")
@pytest.mark.django_db(transaction=True)
def test_an_atomic_task_takes_sqlite_s_write_lock_at_its_first_query_not_before() -> None:
    row = claim(tasks.wait_then_note.schedule("from the task"))
    tasks.RELEASE.clear()
    outcome: list[str] = []

    def run_task() -> None:
        try:
            outcome.append(run_alone(row))
        finally:
            connections.close_all()

    def write_meanwhile() -> None:
        try:
            Note.objects.create(text="meanwhile")
        finally:
            connections.close_all()

    task_thread = threading.Thread(target=run_task)
    task_thread.start()
    time.sleep(0.2)  # the task is waiting inside its atomic block
    writer = threading.Thread(target=write_meanwhile)
    writer.start()
    writer.join(5)
    wrote_while_task_waited = not writer.is_alive()
    tasks.RELEASE.set()
    writer.join(40)
    task_thread.join(40)

    assert wrote_while_task_waited
    assert outcome == ["completed"]
    assert stored(row).status == TaskStatus.COMPLETED
    assert sorted(Note.objects.values_list("text", flat=True)) == ["from the task", "meanwhile"]
