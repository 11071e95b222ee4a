"""The batch runner: fast tasks share a transaction, each isolated by its own savepoint."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext, override_settings
from pytest_django import Settings

from firefly_tasks.batches import BatchRunner
from firefly_tasks.decorators import Task
from firefly_tasks.models import TaskAttempt, TaskModel, TaskStatus, WorkerModel
from firefly_tasks.queryset import TaskQuerySet
from tests.testapp import tasks
from tests.testapp.models import Note

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # A wide window: every test task counts as fast, whatever the machine's load.
    pytest.mark.usefixtures("wide_group_window"),
]


@pytest.fixture
def wide_group_window() -> Iterator[None]:
    with override_settings(FIREFLY_GROUP_COMMIT_WINDOW=5.0):
        yield


@pytest.fixture
def runner() -> BatchRunner:
    worker = WorkerModel.objects.create(name="runner-test", hostname="here", pid=1)
    return BatchRunner(worker, threading.Event())


def claim(runner: BatchRunner, limit: int) -> list[TaskModel]:
    """Claim up to ``limit`` ready tasks of the default queue for the runner's worker."""
    assert runner.worker is not None
    return TaskModel.objects.claim(["default"], limit, runner.worker.pk)


def warm_up(runner: BatchRunner, *task_functions: Task) -> None:
    """Run each task once alone, so the runner learns that it is fast."""
    for function in task_functions:
        function.schedule("warm-up")
    runner.run(claim(runner, 100))
    TaskModel.objects.all().delete()
    Note.objects.all().delete()


def test_unknown_tasks_run_alone_then_fast_ones_are_grouped(runner: BatchRunner) -> None:
    tasks.noop.schedule_many([() for _ in range(30)])
    first = claim(runner, 1)
    runner.run(first)  # learns noop is fast
    rows = claim(runner, 100)

    with CaptureQueriesContext(connection) as queries:
        outcomes, handed_back = runner.run(rows)

    assert outcomes == ["completed"] * 29
    assert handed_back == []
    # One UPDATE for the completions, one INSERT for the attempts, one for the rollups and
    # one read of the edges of workflows waiting for them: no query per task.
    assert len([q for q in queries if not q["sql"].startswith(("BEGIN", "COMMIT"))]) <= 4
    assert TaskModel.objects.filter(status=TaskStatus.COMPLETED).count() == 30
    assert TaskAttempt.objects.filter(outcome="completed").count() == 30


def test_failing_task_in_a_group_rolls_back_only_its_own_writes(runner: BatchRunner) -> None:
    warm_up(runner, tasks.write_note, tasks.write_note_then_fail)
    keep_a = tasks.write_note.schedule("a")
    lost = tasks.write_note_then_fail.schedule("b")
    keep_c = tasks.write_note.schedule("c")

    outcomes, _ = runner.run(claim(runner, 10))

    assert outcomes == ["completed", "completed", "failed"]  # failures are reported last
    assert set(Note.objects.values_list("text", flat=True)) == {"a", "c"}
    statuses = dict(TaskModel.objects.values_list("pk", "status"))
    assert statuses == {keep_a.pk: "completed", lost.pk: "failed", keep_c.pk: "completed"}
    failed = TaskModel.objects.get(pk=lost.pk)
    assert "RuntimeError: failed after writing b" in failed.error
    assert list(failed.attempts.values_list("outcome", flat=True)) == ["failed"]


def test_on_commit_callbacks_of_a_failed_task_in_a_group_are_discarded(runner: BatchRunner) -> None:
    warm_up(runner, tasks.write_note)
    runner._observe(tasks.note_on_commit_then_fail.name, 0.0)
    tasks.write_note.schedule("kept")
    tasks.note_on_commit_then_fail.schedule("dropped")

    runner.run(claim(runner, 10))

    assert list(Note.objects.values_list("text", flat=True)) == ["kept"]


def test_a_group_with_a_row_that_moved_on_puts_its_tasks_back_under_new_attempts(
    runner: BatchRunner,
) -> None:
    warm_up(runner, tasks.write_note)
    rows = [tasks.write_note.schedule(text) for text in ("x", "y", "z")]
    claimed = claim(runner, 10)
    # Another consumer recovered and re-claimed "y" meanwhile: its attempt moved on.
    TaskModel.objects.filter(pk=rows[1].pk).update(attempt=5)

    outcomes, _ = runner.run(claimed)

    # x and z ran in the group that rolled back: their first attempts are spent, never rerun.
    assert sorted(outcomes) == ["fenced", "interrupted", "interrupted"]
    assert not Note.objects.exists()
    assert TaskModel.objects.get(pk=rows[1].pk).status == TaskStatus.RUNNING
    for row in (rows[0], rows[2]):
        assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.CREATED
        assert list(row.attempts.values_list("number", "outcome")) == [(1, "interrupted")]

    outcomes, _ = runner.run(claim(runner, 10))

    assert outcomes == ["completed", "completed"]
    assert set(Note.objects.values_list("text", flat=True)) == {"x", "z"}
    assert sorted(
        TaskModel.objects.filter(status="completed").values_list("attempt", flat=True)
    ) == [2, 2]


def test_a_group_whose_commit_fails_puts_its_tasks_back_under_new_attempts(
    runner: BatchRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm_up(runner, tasks.write_note)
    rows = [tasks.write_note.schedule(text) for text in ("x", "y")]
    claimed = claim(runner, 10)
    complete = TaskQuerySet.complete

    def deadlocked(self: TaskQuerySet, done: list[Any], *args: Any) -> int:
        if len(done) > 1:  # the group's completions: the database refuses them once
            monkeypatch.setattr(TaskQuerySet, "complete", complete)
            raise IntegrityError("deadlock found when trying to get lock")
        return complete(self, done, *args)

    monkeypatch.setattr(TaskQuerySet, "complete", deadlocked)

    outcomes, _ = runner.run(claimed)

    assert outcomes == ["interrupted", "interrupted"]
    assert not Note.objects.exists()
    outcomes, _ = runner.run(claim(runner, 10))
    assert outcomes == ["completed", "completed"]
    for row in rows:
        assert list(row.attempts.values_list("number", "outcome")) == [
            (1, "interrupted"),
            (2, "completed"),
        ]


def test_batch_size_grows_with_fast_tasks_and_starts_at_one(
    runner: BatchRunner, settings: Settings
) -> None:
    assert runner.batch_size() == 1
    runner._observe("fast", 0.0001)
    assert runner.batch_size() == 250  # FIREFLY_CLAIM_BATCH_SIZE's default
    settings.FIREFLY_CLAIM_BATCH_SIZE = 40
    assert runner.batch_size() == 40
    runner._observe("slow", 10.0)
    assert runner.batch_size() == 1


def test_a_claim_brings_back_at_most_256_mib_of_the_largest_payloads(
    runner: BatchRunner, settings: Settings
) -> None:
    runner._observe("fast", 0.0001)
    assert runner.batch_size() == 250  # at the default 1 MiB limit, 256 would fit
    settings.FIREFLY_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
    assert runner.batch_size() == 16  # 250 rows of 16 MiB would be 4 GiB in one reply
    settings.FIREFLY_MAX_PAYLOAD_BYTES = 512 * 1024 * 1024
    assert runner.batch_size() == 1  # one row at least


def test_rest_of_a_batch_is_handed_back_after_a_slow_task(runner: BatchRunner) -> None:
    slow = tasks.sleep_for.schedule(0.6)
    behind = tasks.add.schedule(1, 1)
    claimed = claim(runner, 10)
    assert [row.pk for row in claimed] == [slow.pk, behind.pk]

    outcomes, handed_back = runner.run(claimed)

    assert outcomes == ["completed"]
    assert [row.pk for row in handed_back] == [behind.pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements: PostgreSQL's")
def test_hot_statements_work_prepared_when_the_connection_prepares(runner: BatchRunner) -> None:
    # OPTIONS["prepare_threshold"] = 0 would prepare every statement: psycopg's setting.
    connection.ensure_connection()
    connection.connection.prepare_threshold = 0
    try:
        for round_ in range(3):  # the second and third rounds reuse the prepared statements
            tasks.write_note.schedule(f"one {round_}")
            tasks.write_note.schedule_many([(f"many {round_} {i}",) for i in range(5)])
            tasks.write_note_then_fail.schedule(f"fails {round_}")
            while rows := claim(runner, 100):
                runner.run(rows)
        prepared = connection.connection.execute("SELECT count(*) FROM pg_prepared_statements")
        assert prepared.fetchone()[0] > 0
    finally:
        connection.connection.prepare_threshold = None
    assert TaskModel.objects.filter(status=TaskStatus.COMPLETED).count() == 18
    assert TaskModel.objects.filter(status=TaskStatus.FAILED).count() == 3
    assert Note.objects.count() == 18
