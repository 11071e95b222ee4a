"""Concurrency limits (``firefly_tasks.slots``): at most ``concurrency_limit`` tasks with one
key run at once; the others wait unclaimed (``blocked``), with no attempt spent, and take a
slot as soon as one frees. Every database."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.test import override_settings

from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.execution import run_alone
from firefly_tasks.models import AttemptOutcome, TaskAttempt, TaskModel, TaskStatus, WorkerModel
from tests.testapp import tasks

one_at_a_time = tasks.add.using(concurrency_limit=1, concurrency_key="account-1")


def claim(limit: int = 10, worker_id: int | None = None) -> list[TaskModel]:
    claimed: list[TaskModel] = TaskModel.objects.claim(["default"], limit, worker_id)
    return claimed


def status(row: TaskModel) -> str:
    return str(TaskModel.objects.get(pk=row.pk).status)


def test_tasks_past_the_limit_wait_unclaimed_with_no_attempt_spent(db: None) -> None:
    rows = one_at_a_time.schedule_many([(i, 0) for i in range(3)])

    claimed = claim()

    assert [row.pk for row in claimed] == [rows[0].pk]
    assert [status(row) for row in rows] == ["running", "blocked", "blocked"]
    waiting = TaskModel.objects.filter(pk__in=[rows[1].pk, rows[2].pk])
    assert {(row.attempt, row.worker_id, row.started) for row in waiting} == {(0, None, None)}
    assert not TaskAttempt.objects.exists()
    assert claim() == []  # nothing claimable while the slot is taken


def test_a_finished_task_frees_its_slot_for_the_next_in_run_order(db: None) -> None:
    rows = one_at_a_time.schedule_many([(i, 0) for i in range(3)])
    urgent = one_at_a_time.using(priority=10).schedule(9, 0)
    (first,) = claim()
    assert first.pk == urgent.pk

    assert run_alone(first) == "completed"

    assert status(rows[0]) == "created"  # unparked in the completion's transaction
    assert [status(row) for row in rows[1:]] == ["blocked", "blocked"]
    assert [row.pk for row in claim()] == [rows[0].pk]


def test_other_keys_and_unlimited_tasks_are_claimed_meanwhile(db: None) -> None:
    limited = one_at_a_time.schedule_many([(i, 0) for i in range(5)])
    other = tasks.add.using(concurrency_limit=1, concurrency_key="account-2").schedule(1, 1)
    plain = tasks.add.schedule_many([(1, 2), (3, 4)])

    claimed = {row.pk for row in claim()}

    assert claimed == {limited[0].pk, other.pk, plain[0].pk, plain[1].pk}


def test_a_limit_of_n_admits_n(db: None) -> None:
    three = tasks.add.using(concurrency_limit=3, concurrency_key="k")
    three.schedule_many([(i, 0) for i in range(10)])
    assert len(claim(2)) == 2
    assert len(claim(10)) == 1
    assert claim(10) == []
    assert TaskModel.objects.filter(status=TaskStatus.BLOCKED).count() == 7


def test_the_key_defaults_to_the_task_name(db: None) -> None:
    row = tasks.add.using(concurrency_limit=2).schedule(1, 2)
    assert (row.concurrency_key, row.concurrency_limit) == ("tests.testapp.tasks.add", 2)
    assert row.min_engine == 3


def test_a_key_function_gets_the_call_arguments(db: None) -> None:
    per_account = tasks.add.using(concurrency_limit=1, concurrency_key=lambda i, j: f"a{i}")
    rows = per_account.schedule_many([(1, 0), (1, 1), (2, 0)])
    assert [row.concurrency_key for row in rows] == ["a1", "a1", "a2"]
    assert {row.pk for row in claim()} == {rows[0].pk, rows[2].pk}


@pytest.mark.parametrize(
    ("outcome", "task"),
    [
        ("retry", tasks.always_fail.using(retry_delay=60)),
        ("failed", tasks.always_fail.using(max_retries=0)),
    ],
)
def test_a_failed_attempt_frees_its_slot(db: None, outcome: str, task: Any) -> None:
    limited = task.using(concurrency_limit=1, concurrency_key="k")
    first, second = limited.schedule_many([(), ()])
    (claimed,) = claim()
    assert claimed.pk == first.pk

    assert run_alone(claimed) == outcome

    assert status(second) == "created"


def test_recovering_a_dead_consumers_task_frees_its_slot(db: None) -> None:
    worker = WorkerModel.objects.create(name="dead", hostname="h", pid=1)
    first, second = one_at_a_time.schedule_many([(1, 0), (2, 0)])
    (claimed,) = claim(worker_id=worker.pk)

    assert TaskModel.objects.recover(claimed, worker, AttemptOutcome.LOST)

    # The slot is free: the recovered task (ready again, first in run order) takes it.
    assert [status(first), status(second)] == ["created", "blocked"]
    assert [row.pk for row in claim()] == [first.pk]


def test_cancelling_a_running_task_frees_its_slot_and_blocked_tasks_can_be_cancelled(
    db: None,
) -> None:
    first, second, third = one_at_a_time.schedule_many([(1, 0), (2, 0), (3, 0)])
    claim()

    assert TaskModel.objects.filter(pk=third.pk).cancel() == 1  # blocked: cancelled at once
    assert TaskModel.objects.filter(pk=first.pk).cancel(running=True) == 1

    assert [status(first), status(second), status(third)] == ["cancelled", "created", "cancelled"]


def test_reconcile_unparks_what_free_slots_allow(db: None) -> None:
    rows = tasks.add.using(concurrency_limit=2, concurrency_key="k").schedule_many(
        [(i, 0) for i in range(4)]
    )
    TaskModel.objects.filter(pk__in=[r.pk for r in rows]).update(status=TaskStatus.BLOCKED)

    assert TaskModel.objects.reconcile_slots() == 2

    assert [status(row) for row in rows] == ["created", "created", "blocked", "blocked"]
    assert TaskModel.objects.reconcile_slots() == 0


@override_settings(FIREFLY_QUEUES=[{"name": "default", "concurrency": 2}, "other"])
def test_a_queue_limit_caps_the_queue_across_claims(db: None) -> None:
    tasks.add.schedule_many([(i, 0) for i in range(5)])
    tasks.write_note_other_queue.schedule_many([("a",), ("b",)])

    first = TaskModel.objects.claim(["default", "other"], 10)
    assert sorted(row.queue for row in first) == ["default", "default", "other", "other"]
    assert TaskModel.objects.claim(["default"], 10) == []

    assert run_alone(first[0] if first[0].queue == "default" else first[-1]) == "completed"
    assert len(TaskModel.objects.claim(["default"], 10)) == 1


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"concurrency_limit": 0}, "concurrency_limit must be an int from 1"),
        ({"concurrency_limit": -1}, "concurrency_limit must be an int from 1"),
        ({"concurrency_limit": True}, "concurrency_limit must be an int from 1"),
        ({"concurrency_limit": "3"}, "concurrency_limit must be an int from 1"),
        ({"concurrency_key": "k"}, "concurrency_key needs a concurrency_limit"),
        ({"concurrency_limit": 1, "concurrency_key": ""}, "concurrency_key must be a non-empty"),
        (
            {"concurrency_limit": 1, "concurrency_key": "k" * 256},
            "concurrency_key is 256 characters long",
        ),
    ],
)
def test_bad_limits_are_refused_at_once(options: dict[str, Any], error: str) -> None:
    with pytest.raises(InvalidTaskError, match=error):
        tasks.add.using(**options)


def test_a_key_function_that_raises_stores_nothing(db: None) -> None:
    broken = tasks.add.using(concurrency_limit=1, concurrency_key=lambda i, j: str(i // j))
    with pytest.raises(InvalidTaskError, match=r"concurrency_key function of .* ZeroDivisionError"):
        broken.schedule(1, 0)
    assert not TaskModel.objects.exists()


@pytest.mark.parametrize(
    "queues",
    [
        [{"name": "emails", "concurrency": 0}],
        [{"name": "emails", "concurrency": "5"}],
        [{"name": "", "concurrency": 5}],
        [{"name": "emails", "limit": 5}],
        ["default", 7],
        "default",
    ],
)
def test_a_bad_queue_entry_fails_its_check(queues: object) -> None:
    with override_settings(FIREFLY_QUEUES=queues):
        ids = [message.id for message in run_checks()]
    assert "firefly_tasks.E011" in ids


# Races ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_eight_connections_claiming_at_once_never_run_more_than_the_limit(
    transactional_db: None,
) -> None:
    rounds, racers, limit = 50, 8, 2
    barrier = threading.Barrier(racers + 1)  # and this thread, which resets each round
    claimed: list[list[int]] = [[] for _ in range(rounds)]
    errors: list[BaseException] = []

    def race() -> None:
        try:
            for r in range(rounds):
                barrier.wait(60)
                rows = TaskModel.objects.claim(["default"], 3)
                claimed[r].extend(row.pk for row in rows)
                barrier.wait(60)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()

    limited = tasks.add.using(concurrency_limit=limit, concurrency_key="raced")
    limited.schedule_many([(i, 0) for i in range(20)])
    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(rounds):
            barrier.wait(60)  # the racers claim
            barrier.wait(60)  # they are done: every task back to waiting
            TaskModel.objects.update(status=TaskStatus.CREATED, worker=None, attempt=0)
    except threading.BrokenBarrierError:
        pass
    for thread in threads:
        thread.join(120)
    assert not errors, errors[0]
    assert [len(pks) for pks in claimed] == [limit] * rounds
