"""Unique tasks (``firefly_tasks.uniqueness``): a call whose unique key an unfinished task
holds stores nothing and returns that task; the database's unique index decides races."""

from __future__ import annotations

import datetime
import threading
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from firefly_tasks import signals
from firefly_tasks.batches import BatchRunner
from firefly_tasks.exceptions import DuplicateTaskError, InvalidTaskError, UniqueKeyHeldError
from firefly_tasks.execution import run_alone
from firefly_tasks.key_holds import holds
from firefly_tasks.models import AttemptOutcome, StuckTask, TaskModel, TaskStatus, WorkerModel
from tests.testapp import tasks


def claim(row: TaskModel) -> TaskModel:
    claimed: list[TaskModel] = TaskModel.objects.claim([row.queue], 1)
    assert [c.pk for c in claimed] == [row.pk]
    return claimed[0]


def holder(key: str) -> list[int]:
    """The tasks that hold ``key`` (a finished one lets go of it lazily: ``key_holds``)."""
    rows = TaskModel.objects.filter(unique_hold=key)
    return [row.pk for row in rows if holds(row, timezone.now())]


# Scheduling -----------------------------------------------------------------------------------


def test_a_second_call_with_a_held_key_returns_the_first_task_marked(db: None) -> None:
    sent: list[int] = []

    def on_scheduled(sender: Any, task: TaskModel, **kwargs: Any) -> None:
        sent.append(task.pk)

    signals.task_scheduled.connect(on_scheduled)
    try:
        first = tasks.add.using(unique_key="invoice-42").schedule(1, 2)
        second = tasks.add.using(unique_key="invoice-42").schedule(3, 4)
    finally:
        signals.task_scheduled.disconnect(on_scheduled)

    assert (first.deduplicated, second.deduplicated) == (False, True)
    assert second.pk == first.pk and second.params["args"] == (1, 2)
    assert TaskModel.objects.count() == 1
    assert sent == [first.pk]  # nothing was scheduled the second time
    assert (first.unique_key, holder("invoice-42")) == ("invoice-42", [first.pk])


def test_on_duplicate_raise_stores_nothing_and_names_the_holder(db: None) -> None:
    first = tasks.add.using(unique_key="k").schedule(1, 2)

    with pytest.raises(
        DuplicateTaskError, match=f"Task #{first.pk} .* holds the unique key 'k'"
    ) as caught:
        tasks.add.using(unique_key="k", on_duplicate="raise").schedule(3, 4)

    assert getattr(caught.value.existing, "pk", None) == first.pk
    assert TaskModel.objects.count() == 1


def test_unique_true_derives_the_key_from_the_name_and_the_arguments(db: None) -> None:
    first = tasks.unique_add.schedule(1, j=2)
    same = tasks.unique_add.schedule(1, j=2)
    other = tasks.unique_add.schedule(2, j=2)
    also_other_task = tasks.add.using(unique=True).schedule(1, j=2)

    assert same.deduplicated and same.pk == first.pk
    assert not other.deduplicated and not also_other_task.deduplicated
    assert first.unique_key is not None and first.unique_key.startswith("tests.testapp.tasks.")
    assert len({first.unique_key, other.unique_key, also_other_task.unique_key}) == 3


def test_the_derived_key_ignores_the_order_of_keyword_arguments(db: None) -> None:
    first = tasks.echo.using(unique=True).schedule({"a": 1, "b": [1, 2]})
    same = tasks.echo.using(unique=True).schedule({"b": [1, 2], "a": 1})
    assert same.deduplicated and same.pk == first.pk


def test_a_key_function_gets_the_call_arguments(db: None) -> None:
    by_account = tasks.add.using(unique_key=lambda i, j: f"account-{i}")
    first = by_account.schedule(1, 2)
    assert by_account.schedule(1, 3).pk == first.pk
    assert not by_account.schedule(2, 3).deduplicated
    assert first.unique_key == "account-1"


def test_schedule_many_dedupes_within_the_call_and_against_stored_tasks(db: None) -> None:
    held = tasks.add.using(unique_key="k3").schedule(0, 0)
    keyed = tasks.add.using(unique_key=lambda i, j: f"k{i}")

    rows = keyed.schedule_many([(1, 1), (2, 1), (1, 2), (3, 1), (2, 2)])

    assert [row.deduplicated for row in rows] == [False, False, True, True, True]
    assert rows[2].pk == rows[0].pk and rows[4].pk == rows[1].pk and rows[3].pk == held.pk
    assert TaskModel.objects.count() == 3


def test_schedule_many_with_raise_stores_none_of_the_calls(db: None) -> None:
    keyed = tasks.add.using(unique_key=lambda i, j: f"k{i}", on_duplicate="raise")
    with pytest.raises(DuplicateTaskError):
        keyed.schedule_many([(1, 1), (2, 1), (1, 2)])
    assert TaskModel.objects.count() == 0


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"unique_key": "x" * 256}, "unique_key is 256 characters long; at most 255"),
        ({"unique_key": ""}, "unique_key must be a non-empty string"),
        ({"unique_key": 42}, "unique_key must be a non-empty string, not 42"),
        ({"unique_for": -5}, "unique_for must be a positive timedelta"),
        ({"unique_for": datetime.timedelta(0)}, "unique_for must be a positive timedelta"),
        ({"unique_for": float("nan")}, "unique_for must be a positive timedelta"),
        ({"on_duplicate": "ignore"}, "on_duplicate must be 'return' or 'raise'"),
    ],
)
def test_bad_unique_options_are_refused_at_once(options: dict[str, Any], error: str) -> None:
    with pytest.raises(InvalidTaskError, match=error):
        tasks.add.using(**options)


def test_a_key_function_that_raises_or_returns_no_string_stores_nothing(db: None) -> None:
    with pytest.raises(InvalidTaskError, match=r"unique_key function of .* raised ZeroDivision"):
        tasks.add.using(unique_key=lambda i, j: str(i / j)).schedule(1, 0)
    with pytest.raises(InvalidTaskError, match=r"unique_key function of .* must be a non-empty"):
        tasks.add.using(unique_key=lambda i, j: i).schedule(1, 0)
    with pytest.raises(InvalidTaskError, match="is 300 characters long"):
        tasks.add.using(unique_key=lambda i, j: "k" * i).schedule(300, 0)
    assert TaskModel.objects.count() == 0


def test_a_decorated_unique_task_refuses_bad_options_at_decoration() -> None:
    from firefly_tasks import task

    with pytest.raises(InvalidTaskError, match="unique_for"):

        @task(unique=True, unique_for="1 hour")  # type: ignore[arg-type]
        def nope() -> None: ...


def test_rows_with_a_key_need_the_engine_that_knows_keys(db: None) -> None:
    assert tasks.add.schedule(1, 2).min_engine < 3
    assert tasks.add.using(unique_key="k").schedule(1, 2).min_engine == 3
    assert tasks.unique_add.schedule(1).min_engine == 3


# When the key is let go of --------------------------------------------------------------------


def test_the_key_is_held_while_running_and_let_go_of_when_completed(db: None) -> None:
    first = tasks.add.using(unique_key="k").schedule(1, 2)
    claimed = claim(first)
    assert tasks.add.using(unique_key="k").schedule(5, 5).pk == first.pk  # running: held

    assert run_alone(claimed) == "completed"

    assert holder("k") == []
    assert TaskModel.objects.get(pk=first.pk).unique_key == "k"  # still shown
    again = tasks.add.using(unique_key="k").schedule(5, 5)
    assert not again.deduplicated and again.pk != first.pk


def hold_of(row: TaskModel) -> str | None:
    return TaskModel.objects.values_list("unique_hold", flat=True).get(pk=row.pk)


# On PostgreSQL a completion clears the hold in its own statement (dialects.postgresql); on the
# other databases the next call with the key clears it.
CLEARED = None if connection.vendor == "postgresql" else "k"


def test_a_completion_lets_go_of_the_key_in_its_own_row_on_postgresql(db: None) -> None:
    worker = WorkerModel.objects.create(name="w", hostname="h", pid=1)
    runner = BatchRunner(worker, threading.Event())
    alone = tasks.add.using(unique_key="k").schedule(1, 2)
    # Its first run, alone: a completion of one row (and the runner learns it is fast).
    assert runner.run(TaskModel.objects.claim([alone.queue], 1, worker.pk))[0] == ["completed"]
    assert hold_of(alone) == CLEARED

    # Fast tasks completed as one group, in one statement: with keys and without.
    keyed = [tasks.add.using(unique_key=f"g{i}").schedule(i, 1) for i in range(4)]
    plain = tasks.add.schedule(0, 0)
    outcomes, _ = runner.run(TaskModel.objects.claim([plain.queue], 10, worker.pk))

    assert outcomes == ["completed"] * 5
    assert [hold_of(row) for row in keyed] == [CLEARED and f"g{i}" for i in range(4)]
    assert hold_of(plain) is None
    assert holder("k") == [] and not tasks.add.using(unique_key="k").schedule(1, 2).deduplicated


def test_a_completion_keeps_the_key_within_unique_for_or_while_a_thread_is_stuck_in_it(
    db: None,
) -> None:
    hourly = tasks.add.using(unique_key="k", unique_for=datetime.timedelta(hours=1)).schedule(1, 2)
    assert run_alone(claim(hourly)) == "completed"
    assert hold_of(hourly) == "k"
    TaskModel.objects.filter(pk=hourly.pk).update(unique_hold=None)

    # An earlier attempt's thread was fenced while still in the task (firefly_tasks.fence).
    worker = WorkerModel.objects.create(name="stuck", hostname="h", pid=1)
    row = tasks.add.using(unique_key="k").schedule(1, 2)
    StuckTask.objects.create(task=row, worker=worker, queue=row.queue, since=timezone.now())
    assert run_alone(claim(row)) == "completed"

    assert hold_of(row) == "k"
    assert tasks.add.using(unique_key="k").schedule(1, 2).pk == row.pk  # still held


def test_the_key_is_held_through_retries_and_let_go_of_when_it_fails_for_good(db: None) -> None:
    row = tasks.always_fail.using(unique_key="k", retry_delay=0).schedule()
    assert run_alone(claim(row)) == "retry"
    assert holder("k") == [row.pk]
    assert run_alone(claim(row)) == "retry"
    assert run_alone(claim(row)) == "failed"
    assert holder("k") == []


def test_the_key_is_let_go_of_when_cancelled_waiting_or_running(db: None) -> None:
    running = tasks.add.using(unique_key="b").schedule(1, 2)
    claim(running)
    waiting = tasks.add.using(unique_key="a").schedule(1, 2)

    assert TaskModel.objects.filter(pk=waiting.pk).cancel() == 1
    assert TaskModel.objects.filter(pk=running.pk).cancel(running=True) == 1

    assert holder("a") == holder("b") == []


def test_a_recovered_task_keeps_its_key(db: None) -> None:
    worker = WorkerModel.objects.create(name="dead", hostname="h", pid=1)
    row = tasks.add.using(unique_key="k").schedule(1, 2)
    (claimed,) = TaskModel.objects.claim([row.queue], 1, worker.pk)

    assert TaskModel.objects.recover(claimed, worker, AttemptOutcome.LOST)

    assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.CREATED
    assert holder("k") == [row.pk]
    assert tasks.add.using(unique_key="k").schedule(1, 2).deduplicated


def test_a_poisoned_task_lets_go_of_its_key(db: None, settings: Any) -> None:
    settings.FIREFLY_MAX_LOST_ATTEMPTS = 0
    row = tasks.add.using(unique_key="k").schedule(1, 2)
    claimed = claim(row)

    assert TaskModel.objects.recover(claimed, None, AttemptOutcome.LOST, charge=True)

    assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.FAILED
    assert holder("k") == []


def test_unique_for_holds_the_key_after_the_task_finished_until_the_period_is_over(
    db: None,
) -> None:
    hourly = tasks.add.using(unique_key="report", unique_for=datetime.timedelta(hours=1))
    first = hourly.schedule(1, 2)
    assert run_alone(claim(first)) == "completed"

    assert hourly.schedule(1, 2).pk == first.pk  # finished, within its hour: still held
    TaskModel.objects.filter(pk=first.pk).update(
        unique_until=timezone.now() - datetime.timedelta(seconds=1)
    )
    later = hourly.schedule(1, 2)

    assert not later.deduplicated and later.pk != first.pk
    assert holder("report") == [later.pk]
    assert later.unique_until is not None and later.unique_until > timezone.now()


def test_unique_for_still_holds_the_key_while_unfinished_past_the_period(db: None) -> None:
    quick = tasks.add.using(unique_key="k", unique_for=1)
    first = quick.schedule(1, 2)
    TaskModel.objects.filter(pk=first.pk).update(unique_until=timezone.now())
    assert quick.schedule(1, 2).pk == first.pk


# Requeueing -----------------------------------------------------------------------------------


def test_requeue_takes_the_key_again(db: None) -> None:
    row = tasks.always_fail.using(unique_key="k", max_retries=0).schedule()
    assert run_alone(claim(row)) == "failed"

    assert TaskModel.objects.filter(pk=row.pk).requeue() == 1

    assert holder("k") == [row.pk]
    assert tasks.always_fail.using(unique_key="k").schedule().pk == row.pk


def test_requeue_is_refused_while_a_newer_task_holds_the_key(db: None) -> None:
    failed = tasks.always_fail.using(unique_key="k", max_retries=0).schedule()
    assert run_alone(claim(failed)) == "failed"
    plain = tasks.always_fail.using(max_retries=0).schedule()
    assert run_alone(claim(plain)) == "failed"
    newer = tasks.add.using(unique_key="k").schedule(1, 2)

    both = TaskModel.objects.filter(pk__in=[failed.pk, plain.pk])
    with pytest.raises(UniqueKeyHeldError, match=f"task #{failed.pk} by #{newer.pk}") as caught:
        both.requeue()
    assert caught.value.held == {failed.pk: newer.pk}
    assert set(both.values_list("status", flat=True)) == {TaskStatus.FAILED}  # nothing moved

    assert both.requeue(skip_held=True) == 1
    assert TaskModel.objects.get(pk=plain.pk).status == TaskStatus.CREATED
    assert TaskModel.objects.get(pk=failed.pk).status == TaskStatus.FAILED
    assert holder("k") == [newer.pk]


def test_two_failed_tasks_of_one_key_requeue_one_of_them(db: None) -> None:
    rows = []
    for _ in range(2):
        row = tasks.always_fail.using(unique_key="k", max_retries=0).schedule()
        assert run_alone(claim(row)) == "failed"
        rows.append(row)

    assert TaskModel.objects.filter(unique_key="k").requeue(skip_held=True) == 1
    assert holder("k") == [rows[0].pk]


# Races ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_eight_connections_inserting_one_key_behind_a_barrier_store_one_row_a_round(
    transactional_db: None, figure: Any
) -> None:
    rounds, racers = 200, 8
    barrier = threading.Barrier(racers)
    returned: list[list[tuple[int, bool]]] = [[] for _ in range(rounds)]
    errors: list[BaseException] = []

    def race() -> None:
        try:
            for r in range(rounds):
                barrier.wait(30)
                row = tasks.add.using(unique_key=f"round-{r}").schedule(r, 0)
                returned[r].append((row.pk, row.deduplicated))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors[0]

    for r, results in enumerate(returned):
        assert len(results) == racers
        assert len({pk for pk, _ in results}) == 1, f"round {r}: {results}"
        assert sorted(dup for _, dup in results) == [False] + [True] * (racers - 1)
    stored = [str(key) for key in TaskModel.objects.values_list("unique_key", flat=True)]
    assert sorted(stored) == sorted(f"round-{r}" for r in range(rounds))
    figure(rounds=rounds, racers=racers, rows=len(stored))
