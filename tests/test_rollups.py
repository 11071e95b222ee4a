"""Per-minute rollups: written with the outcomes they count, once per group commit, one set of
rows per writer, exact under rollbacks and many consumers, kept when tasks are pruned."""

from __future__ import annotations

import datetime
import io
import threading
from collections.abc import Callable, Iterator

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from firefly_tasks import rollups
from firefly_tasks.batches import BatchRunner
from firefly_tasks.execution import run_alone
from firefly_tasks.models import TaskModel, TaskRollup, TaskStatus, WorkerModel
from firefly_tasks.rollups import BOUNDS, RUN_BUCKETS, WAIT_BUCKETS, Tally
from firefly_tasks.rows import Completion
from tests.conftest import Consumer
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def runner() -> Iterator[BatchRunner]:
    worker = WorkerModel.objects.create(name="rollup-test", hostname="here", pid=1)
    with override_settings(FIREFLY_GROUP_COMMIT_WINDOW=5.0):  # every test task is fast
        yield BatchRunner(worker, threading.Event())


def claim(runner: BatchRunner, limit: int = 100) -> list[TaskModel]:
    assert runner.worker is not None
    return TaskModel.objects.claim(["default"], limit, runner.worker.pk)


def totals() -> dict[str, int]:
    fields = ("completed", "failed", "retried", *RUN_BUCKETS, *WAIT_BUCKETS)
    sums = TaskRollup.objects.aggregate(**{f: Sum(f) for f in fields})
    return {f: int(v or 0) for f, v in sums.items()}


def attempts_in(buckets: tuple[str, ...], counted: dict[str, int]) -> int:
    return sum(counted[b] for b in buckets)


def test_a_group_commit_writes_its_completions_and_failures_in_one_statement(
    runner: BatchRunner,
) -> None:
    tasks.write_note.schedule("warm-up")
    tasks.write_note_then_fail.schedule("warm-up")
    runner.run(claim(runner))  # learns both are fast
    TaskRollup.objects.all().delete()
    tasks.write_note.schedule_many([(f"n{i}",) for i in range(5)])
    tasks.write_note_then_fail.schedule("x")

    with CaptureQueriesContext(connection) as queries:
        outcomes, _ = runner.run(claim(runner))

    assert sorted(outcomes) == ["completed"] * 5 + ["failed"]
    table = TaskRollup._meta.db_table
    writes = [
        q["sql"] for q in queries if f"INSERT INTO {connection.ops.quote_name(table)}" in q["sql"]
    ]
    assert len(writes) == 1
    counted = totals()
    assert (counted["completed"], counted["failed"], counted["retried"]) == (5, 1, 0)
    assert attempts_in(RUN_BUCKETS, counted) == attempts_in(WAIT_BUCKETS, counted) == 6
    names = set(TaskRollup.objects.values_list("func_name", flat=True))
    assert names == {tasks.write_note.name, tasks.write_note_then_fail.name}


def test_a_group_rolled_back_counts_only_what_then_committed(runner: BatchRunner) -> None:
    tasks.write_note.schedule("warm-up")
    runner.run(claim(runner))
    TaskRollup.objects.all().delete()
    rows = [tasks.write_note.schedule(text) for text in ("x", "y", "z")]
    claimed = claim(runner)
    # Another consumer took "y" over: the group rolls back, its tasks go back to the queue.
    TaskModel.objects.filter(pk=rows[1].pk).update(attempt=5)

    outcomes, _ = runner.run(claimed)
    assert sorted(outcomes) == ["fenced", "interrupted", "interrupted"]
    assert totals()["completed"] == 0

    outcomes, _ = runner.run(claim(runner))
    assert outcomes == ["completed", "completed"]
    assert totals()["completed"] == 2


def test_nothing_is_counted_when_the_transaction_rolls_back(runner: BatchRunner) -> None:
    task = tasks.add.schedule(1, 2)
    (claimed,) = claim(runner)
    claimed.started = timezone.now()
    done = Completion(claimed, 3, "3", "3", timezone.now())

    with pytest.raises(RuntimeError), transaction.atomic():
        assert TaskModel.objects.complete([done], runner.worker) == 1
        assert TaskRollup.objects.count() == 1
        raise RuntimeError("roll back")

    assert TaskRollup.objects.count() == 0
    assert TaskModel.objects.get(pk=task.pk).status == TaskStatus.RUNNING


def test_a_group_adds_each_row_to_its_own_minute_and_columns(runner: BatchRunner) -> None:
    # Two minutes and two durations in one statement: the rows add to different columns.
    rows = tasks.add.schedule_many([(1, 1), (2, 2), (3, 3)])
    claimed = claim(runner)
    minute = timezone.now().replace(second=0, microsecond=0) - datetime.timedelta(minutes=5)
    done = []
    for row, ran, at in zip(claimed, (0.0, 0.03, 2.0), (5, 10, 70), strict=True):
        row.not_before = row.started = minute
        row.run_seconds = ran
        done.append(Completion(row, 0, "0", "0", minute + datetime.timedelta(seconds=at)))
    with transaction.atomic():
        assert TaskModel.objects.complete(done, runner.worker) == len(rows)

    stored = {r.minute: r for r in TaskRollup.objects.all()}
    later = minute + datetime.timedelta(minutes=1)
    assert sorted(stored) == [minute, later]
    first, second = stored[minute], stored[later]
    assert (first.completed, second.completed) == (2, 1)
    assert first.run_seconds == pytest.approx(0.03)
    assert second.run_seconds == pytest.approx(2.0)
    assert getattr(first, RUN_BUCKETS[0]) == getattr(first, RUN_BUCKETS[BOUNDS.index(0.05)]) == 1
    assert getattr(second, RUN_BUCKETS[BOUNDS.index(2.5)]) == 1
    assert sum(getattr(second, b) for b in RUN_BUCKETS) == 1
    assert getattr(first, WAIT_BUCKETS[0]) == 2
    assert (first.failed, first.retried, first.wait_seconds) == (0, 0, 0.0)


def test_a_fenced_group_adds_nothing_even_before_it_rolls_back(runner: BatchRunner) -> None:
    tasks.add.schedule_many([(1, 1), (2, 2)])
    claimed = claim(runner)
    TaskModel.objects.filter(pk=claimed[1].pk).update(attempt=9)  # taken over
    now = timezone.now()
    done = [Completion(row, 0, "0", "0", now) for row in claimed]

    with pytest.raises(RuntimeError), transaction.atomic():
        assert TaskModel.objects.complete(done, runner.worker) == 1
        assert not TaskRollup.objects.exists()
        raise RuntimeError("the caller rolls back")


def test_retries_and_failures_for_good_are_counted_apart(db: None) -> None:
    row = tasks.always_fail.schedule()  # max_retries=2: two retries, then failed
    for _ in range(3):
        TaskModel.objects.filter(pk=row.pk).update(not_before=timezone.now())
        (claimed,) = TaskModel.objects.claim(["default"], 1)
        run_alone(claimed)

    assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.FAILED
    counted = totals()
    assert (counted["completed"], counted["failed"], counted["retried"]) == (0, 1, 2)


def test_the_same_writer_adds_to_its_rows_of_the_minute(db: None) -> None:
    row = tasks.add.schedule(1, 2)
    row.started = row.not_before
    finished = row.not_before + datetime.timedelta(milliseconds=30)
    for _ in range(3):
        tally = Tally()
        tally.completed([Completion(row, 3, "3", "3", finished)])
        tally.failed(row, finished, retried=True)
        with transaction.atomic():
            tally.write("default", None)

    (stored,) = TaskRollup.objects.all()
    assert (stored.completed, stored.retried, stored.failed) == (3, 3, 0)
    assert stored.minute == finished.replace(second=0, microsecond=0)
    assert stored.run_seconds == pytest.approx(6 * 0.03)
    # 30 ms ran: the bucket whose upper bound is 50 ms; no wait: the first bucket.
    assert getattr(stored, RUN_BUCKETS[BOUNDS.index(0.05)]) == 6
    assert getattr(stored, WAIT_BUCKETS[0]) == 6
    assert stored.worker_id == rollups.NO_WORKER


def test_wait_and_run_times_are_the_attempts_own(runner: BatchRunner) -> None:
    tasks.sleep_for.schedule(0.03)
    (claimed,) = claim(runner)
    threading.Event().wait(0.2)  # claimed in a batch, not yet started: waiting too

    assert run_alone(claimed, runner.worker) == "completed"

    (stored,) = TaskRollup.objects.all()
    assert stored.wait_seconds >= 0.2
    assert stored.run_seconds >= 0.03
    ran = next(i for i, name in enumerate(RUN_BUCKETS) if getattr(stored, name))
    assert BOUNDS[ran] >= 0.03  # never a bucket below what it slept
    assert stored.worker_id == runner.worker.pk  # type: ignore[union-attr]


def test_every_consumer_thread_writes_rows_of_its_own_and_nothing_is_lost(
    start_consumer: Callable[..., Consumer],
) -> None:
    tasks.noop.schedule_many([() for _ in range(600)])
    consumers = [start_consumer("--burst", "--concurrency", "2") for _ in range(3)]

    assert [c.wait(120) for c in consumers] == [0, 0, 0]

    assert TaskModel.objects.filter(status=TaskStatus.COMPLETED).count() == 600
    assert totals()["completed"] == 600
    writers = set(TaskRollup.objects.values_list("worker_id", "slot"))
    workers = set(WorkerModel.objects.filter(processed__gt=0).values_list("pk", flat=True))
    assert {worker for worker, _ in writers} == workers
    assert {slot for _, slot in writers} <= {0, 1}


def test_rollups_outlive_the_tasks_they_count(db: None) -> None:
    row = tasks.add.schedule(2, 2)
    (claimed,) = TaskModel.objects.claim(["default"], 1)
    run_alone(claimed)
    TaskModel.objects.filter(pk=row.pk).update(
        completed=timezone.now() - datetime.timedelta(days=60)
    )

    call_command("prune_tasks", "--days", "30", stdout=io.StringIO())

    assert not TaskModel.objects.exists()
    assert totals()["completed"] == 1


def test_the_histogram_puts_each_value_in_the_bucket_of_its_upper_bound() -> None:
    values = [-0.5, 0.0, *BOUNDS, *(b * 1.01 for b in BOUNDS), 5000.0]
    buckets = [0] * len(RUN_BUCKETS)

    total = rollups._count(buckets, list(values))

    expected = [0] * len(RUN_BUCKETS)
    for value in values:  # a bucket holds what is above the bound before it, up to its own
        expected[next((i for i, b in enumerate(BOUNDS) if value <= b), len(BOUNDS))] += 1
    assert buckets == expected
    assert total == pytest.approx(sum(v for v in values if v > 0))
