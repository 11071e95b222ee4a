"""Running recovered tasks alone, so that only the task that kills its consumer is charged:
``firefly_tasks.isolation`` and the recovery in ``firefly_tasks.maintenance``."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db.models import Count

from firefly_tasks.isolation import IsolationLock
from firefly_tasks.models import TaskAttempt, TaskModel, TaskStatus
from tests.conftest import Consumer, wait_until
from tests.testapp import tasks
from tests.testapp.models import Execution

# Fast liveness: heartbeats every 0.2 s, dead after 1 s of silence.
FAST = {"FIREFLY_HEARTBEAT_INTERVAL": 0.2, "FIREFLY_WORKER_TIMEOUT": 1.0}


def test_alone_waits_for_shared_holders_and_holds_new_ones_back() -> None:
    lock = IsolationLock()
    events: list[str] = []
    shared_in = threading.Event()
    release_shared = threading.Event()
    alone_waiting = threading.Event()

    def shared_holder() -> None:
        with lock.shared():
            shared_in.set()
            release_shared.wait(10)
            events.append("first shared done")

    def alone_holder() -> None:
        alone_waiting.set()
        with lock.alone():
            events.append("alone")

    def late_shared() -> None:
        with lock.shared():
            events.append("late shared")

    first = threading.Thread(target=shared_holder)
    first.start()
    assert shared_in.wait(10)
    solo = threading.Thread(target=alone_holder)
    solo.start()
    assert alone_waiting.wait(10)
    wait_until(lambda: lock._waiting_alone == 1, timeout=10)
    late = threading.Thread(target=late_shared)
    late.start()
    release_shared.set()
    for thread in (first, solo, late):
        thread.join(10)
    assert events == ["first shared done", "alone", "late shared"]


@pytest.mark.slow
def test_a_task_that_kills_its_consumer_is_poisoned_and_no_innocent_task_is_charged(
    start_consumer: Callable[..., Consumer], figure: Callable[..., None]
) -> None:
    # Fast atomic tasks first, so the consumer learns to claim big batches and group them;
    # the killer sits in the middle of the backlog, with innocents claimed beside it.
    before = tasks.record_execution_atomic.schedule_many([()] * 300)
    (killer,) = tasks.kill_own_consumer.schedule_many([()])
    after = tasks.record_execution_atomic.schedule_many([()] * 300)
    innocents = {row.pk for row in [*before, *after]}
    settings = {**FAST, "FIREFLY_MAX_LOST_ATTEMPTS": 2}

    consumers = [start_consumer("--concurrency", "2", **settings)]

    def finished() -> bool:
        if consumers[-1].process.poll() is not None:  # killed by the task: start another
            assert len(consumers) < 20, "the killer was never stopped"
            consumers.append(start_consumer("--concurrency", "2", **settings))
        return not TaskModel.objects.exclude(
            status__in=(TaskStatus.COMPLETED, TaskStatus.FAILED)
        ).exists()

    wait_until(finished, timeout=120, interval=0.2)

    killer.refresh_from_db()
    assert killer.status == TaskStatus.FAILED
    assert killer.error.startswith("PoisonTask: lost with its worker 3 times")
    assert killer.lost_attempts == 3
    runs = dict(
        Execution.objects.values_list("task_id").annotate(n=Count("id")).values_list("task_id", "n")
    )
    assert runs[killer.pk] >= 3  # it ran each time it was charged
    completed = set(
        TaskModel.objects.filter(status=TaskStatus.COMPLETED).values_list("pk", flat=True)
    )
    assert completed == innocents  # every innocent task completed...
    assert all(runs[pk] == 1 for pk in innocents)  # ...its writes committed exactly once...
    charged = TaskModel.objects.filter(pk__in=innocents, lost_attempts__gt=0)
    assert not charged.exists()  # ...and none was charged with a loss
    assert not TaskAttempt.objects.filter(task_id__in=innocents, outcome="lost").exists()
    figure(
        consumers_killed=len(consumers) - 1,
        innocents=len(innocents),
        innocents_released_uncharged=TaskAttempt.objects.filter(
            task_id__in=innocents, outcome="released"
        )
        .values("task_id")
        .distinct()
        .count(),
        killer_runs=runs[killer.pk],
    )
