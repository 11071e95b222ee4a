"""Chains and groups with real consumer processes: results pass along a chain in order with
several consumers, a failing link stops the rest, and a group's callback runs once with every
result in order, also when a consumer is killed mid-group. Every database."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from firefly_tasks import chain, group
from firefly_tasks.models import TaskModel, TaskStatus
from tests.conftest import Consumer, finished, wait_until
from tests.testapp import tasks
from tests.testapp.models import Run

pytestmark = pytest.mark.slow

FAST = {"FIREFLY_HEARTBEAT_INTERVAL": 0.2, "FIREFLY_WORKER_TIMEOUT": 1.0}


def test_three_link_chains_pass_results_in_order_across_three_consumers(
    start_consumer: Callable[..., Consumer],
) -> None:
    chains = [
        chain(
            tasks.record_link.s(f"c{n}", f"c{n}-1", 0.05),
            tasks.record_link.s(f"c{n}-2", 0.05),
            tasks.record_link.s(f"c{n}-3", 0.05),
        ).schedule()
        for n in range(6)
    ]
    for _ in range(3):
        start_consumer("--concurrency", "2")

    wait_until(finished(*itertools.chain(*chains)), timeout=120)

    for n, links in enumerate(chains):
        last = TaskModel.objects.get(pk=links[-1].pk)
        assert last.status == TaskStatus.COMPLETED
        assert last.returned == f"c{n}>c{n}-1>c{n}-2>c{n}-3"
        runs = [Run.objects.get(task_id=link.pk) for link in links]
        for before, after in itertools.pairwise(runs):
            assert after.began >= before.ended


def test_a_failing_middle_link_leaves_the_last_never_run_and_marked(
    start_consumer: Callable[..., Consumer],
) -> None:
    first, failing, last = chain(
        tasks.record_link.s("start", "ok", 0.0),
        tasks.always_fail.si(),
        tasks.record_link.s("never", 0.0),
    ).schedule()
    start_consumer("--concurrency", "2")
    start_consumer("--concurrency", "2")

    wait_until(finished(first, failing, last), timeout=60)

    assert TaskModel.objects.get(pk=failing.pk).status == TaskStatus.FAILED
    last.refresh_from_db()
    assert last.status == TaskStatus.CANCELLED
    assert last.error.startswith("DependencyFailed") and f"#{failing.pk}" in last.error
    assert last.attempt == 0 and not last.attempts.exists()
    assert not Run.objects.filter(label="never").exists()


@pytest.mark.parametrize("kill", [False, True], ids=["steady", "consumer-killed"])
def test_a_group_of_fifty_runs_its_callback_once_with_every_result_in_order(
    start_consumer: Callable[..., Consumer], kill: bool
) -> None:
    members, callback = (
        group(tasks.sleep_then_double.s(i, 0.2) for i in range(50)).then(tasks.echo.s()).schedule()
    )
    consumers = [start_consumer("--concurrency", "2", **FAST) for _ in range(3)]
    if kill:
        done = TaskModel.objects.filter(pk__in=[row.pk for row in members], status="completed")
        wait_until(lambda: done.count() >= 10, timeout=60)
        consumers[0].kill()  # kill -9, mid-group
        assert done.count() < 50

    wait_until(finished(*members, callback), timeout=180)

    callback.refresh_from_db()
    assert callback.status == TaskStatus.COMPLETED
    assert callback.returned == [2 * i for i in range(50)]
    assert callback.attempt == 1  # promoted once, claimed once
    statuses = TaskModel.objects.filter(pk__in=[row.pk for row in members])
    assert set(statuses.values_list("status", flat=True)) == {TaskStatus.COMPLETED}


def test_wait_result_and_hooks_with_a_real_consumer(
    start_consumer: Callable[..., Consumer],
) -> None:
    from tests.testapp.models import Note

    ok = tasks.hooked.schedule(False)
    failing = tasks.hooked.schedule(True)  # fails twice (one retry), then for good
    start_consumer("--concurrency", "2")

    assert ok.wait_result(timeout=60) == "ok"
    assert failing.wait_result(timeout=60) is None and failing.status == TaskStatus.FAILED
    hooks = TaskModel.objects.filter(func_name="tests.testapp.tasks.note_outcome")
    wait_until(lambda: hooks.filter(status=TaskStatus.COMPLETED).count() == 2, timeout=60)
    notes = sorted(Note.objects.values_list("text", flat=True))
    assert notes == sorted([f"{ok.pk} completed", f"{failing.pk} failed"])  # once each
