"""Rolling deploys: old and new consumers share the table, and a consumer never claims a row
that needs a newer engine than its own (``TaskModel.min_engine``, ``states.ENGINE_VERSION``)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from firefly_tasks.models import TaskAttempt, TaskModel, WorkerModel
from firefly_tasks.states import ENGINE_VERSION, TaskStatus
from tests.conftest import Consumer, wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.slow

OLD, NEW = ENGINE_VERSION, ENGINE_VERSION + 1


def schedule_mixed(
    count: int, task: Any = tasks.add, args: tuple[Any, ...] = (1, 2)
) -> tuple[set[int], set[int]]:
    """``count`` rows any consumer may run and ``count`` that need the newer engine,
    interleaved: every claim of an old consumer that did not filter would take both kinds.
    One transaction: running consumers see the rows only with their ``min_engine`` set."""
    with transaction.atomic():
        rows = task.schedule_many([args] * (2 * count))
        plain, newer = {row.pk for row in rows[::2]}, {row.pk for row in rows[1::2]}
        TaskModel.objects.filter(pk__in=newer).update(min_engine=NEW)
    return plain, newer


def runners(pks: set[int]) -> set[str]:
    names = TaskAttempt.objects.filter(task_id__in=pks).values_list("worker_name", flat=True)
    return set(names)


def test_old_and_new_consumers_side_by_side_leave_new_work_to_the_new_one(
    start_consumer: Callable[..., Consumer],
) -> None:
    old = start_consumer("--worker-name", "old", TESTAPP_ENGINE_VERSION=OLD)
    new = start_consumer("--worker-name", "new", TESTAPP_ENGINE_VERSION=NEW)
    # Both wait for work before any arrives, and each task takes a while: both claim.
    wait_until(lambda: WorkerModel.objects.filter(name__in=["old", "new"]).count() == 2, 60)
    plain, newer = schedule_mixed(40, tasks.sleep_for, (0.02,))

    done = TaskModel.objects.filter(status=TaskStatus.COMPLETED)
    wait_until(lambda: done.count() == len(plain) + len(newer), 120)
    for consumer in (old, new):
        consumer.signal(signal.SIGTERM)
        assert consumer.wait(60) == 0, consumer.output()
    assert runners(newer) == {"new"}
    assert "old" in runners(plain)  # the old consumer did work alongside
    engines = dict(WorkerModel.objects.values_list("name", "engine"))
    assert engines == {"old": OLD, "new": NEW}


def test_an_old_consumer_alone_runs_what_it_may_and_leaves_the_rest_waiting(
    start_consumer: Callable[..., Consumer],
) -> None:
    plain, newer = schedule_mixed(20)

    old = start_consumer("--burst", "--worker-name", "old", TESTAPP_ENGINE_VERSION=OLD)
    assert old.wait(60) == 0, old.output()

    assert set(TaskModel.objects.filter(pk__in=plain).values_list("status", flat=True)) == {
        TaskStatus.COMPLETED
    }
    waiting = TaskModel.objects.filter(pk__in=newer)
    assert set(waiting.values_list("status", "attempt")) == {(TaskStatus.CREATED, 0)}

    new = start_consumer("--burst", "--worker-name", "new", TESTAPP_ENGINE_VERSION=NEW)
    assert new.wait(60) == 0, new.output()
    assert set(waiting.values_list("status", flat=True)) == {TaskStatus.COMPLETED}
    assert runners(newer) == {"new"}
