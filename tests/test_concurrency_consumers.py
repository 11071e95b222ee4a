"""Concurrency limits with real consumer processes: tasks of one key never overlap, other keys
run meanwhile, and a consumer killed while it holds a slot does not keep it. Every database."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from firefly_tasks.models import FINISHED_STATUSES, TaskModel, TaskStatus
from tests.conftest import Consumer, wait_until
from tests.testapp import tasks
from tests.testapp.models import Run

pytestmark = pytest.mark.slow

FAST = {"FIREFLY_HEARTBEAT_INTERVAL": 0.2, "FIREFLY_WORKER_TIMEOUT": 1.0}


def runs(label: str) -> list[Run]:
    return list(Run.objects.filter(label=label).order_by("began"))


def overlapping(a: Run, b: Run) -> bool:
    return a.began < b.ended and b.began < a.ended


def test_forty_tasks_of_one_key_never_overlap_while_other_keys_run(
    start_consumer: Callable[..., Consumer], figure: Callable[..., None]
) -> None:
    limited = tasks.record_interval.using(concurrency_limit=1, concurrency_key="account-1")
    one_key = limited.schedule_many([("account-1", 0.2)] * 40)
    others = tasks.record_interval.using(
        concurrency_limit=1, concurrency_key=lambda label, seconds: label
    ).schedule_many([(f"other-{i}", 0.2) for i in range(12)])
    for _ in range(3):
        start_consumer("--concurrency", "4")

    rows = TaskModel.objects.filter(pk__in=[row.pk for row in [*one_key, *others]])
    wait_until(lambda: not rows.exclude(status__in=FINISHED_STATUSES).exists(), timeout=120)

    assert set(rows.values_list("status", flat=True)) == {TaskStatus.COMPLETED}
    serial = runs("account-1")
    assert len(serial) == 40
    for before, after in itertools.pairwise(serial):
        assert after.began >= before.ended, (before.task_id, after.task_id)
    # The other keys did not wait for account-1's forty: each ran beside one of them.
    other_runs = list(Run.objects.filter(label__startswith="other-"))
    assert len(other_runs) == 12
    beside = [run for run in other_runs if any(overlapping(run, s) for s in serial)]
    assert len(beside) == 12
    # Nothing was spent on waiting: one attempt each.
    assert set(rows.values_list("attempt", flat=True)) == {1}
    figure(serial=len(serial), others=len(other_runs), span_s=serial[-1].ended - serial[0].began)


def test_a_consumer_killed_holding_the_slot_does_not_keep_it(
    start_consumer: Callable[..., Consumer],
) -> None:
    limited = tasks.record_interval.using(concurrency_limit=1, concurrency_key="k")
    # 60 s on its first attempt only: once recovered, it runs at once.
    holder = tasks.slow_first_attempt.using(concurrency_limit=1, concurrency_key="k").schedule(60)
    waiting = limited.schedule_many([("k", 0.05)] * 5)
    victim = start_consumer("--concurrency", "1", **FAST)  # the holder first, alone
    wait_until(lambda: TaskModel.objects.get(pk=holder.pk).status == TaskStatus.RUNNING)
    assert {TaskModel.objects.get(pk=row.pk).status for row in waiting} == {TaskStatus.BLOCKED}

    victim.kill()
    rescuer = start_consumer("--concurrency", "2", **FAST)

    # Once recovery ran, the slot is free: the recovered task and the five go through.
    rows = TaskModel.objects.filter(pk__in=[holder.pk, *(row.pk for row in waiting)])
    wait_until(lambda: rows.filter(status=TaskStatus.COMPLETED).count() == 6, timeout=120)
    recovered = TaskModel.objects.get(pk=holder.pk)
    assert recovered.attempts.filter(outcome__in=["released", "lost"]).count() == 1
    done = runs("k")
    for before, after in itertools.pairwise(done):
        assert after.began >= before.ended
    running = TaskModel.objects.filter(concurrency_key="k", status=TaskStatus.RUNNING).count()
    assert running <= 1
    rescuer.kill()
