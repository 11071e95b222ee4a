"""The mechanism that promotes a waiting task (``firefly_tasks.dependencies``): the last two
tasks it waits for finishing on two connections at once promote it exactly once, every round,
on every database."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
from django.db import transaction
from django.utils import timezone

from firefly_tasks import group
from firefly_tasks.models import TaskModel, TaskStatus, WorkerModel
from firefly_tasks.rows import Completion
from tests.conftest import run_at_once
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 200


def promotions(caplog: pytest.LogCaptureFixture, pk: int) -> int:
    return sum(record.getMessage() == f"task promoted id={pk}" for record in caplog.records)


def completing(
    claimed: list[TaskModel], worker: WorkerModel, fail: int | None = None
) -> Callable[[], int]:
    """What each racing thread does: take one of ``claimed`` and record its outcome (failed
    for good if it is ``fail``, else completed); how many rows it moved."""
    take = threading.Lock()

    def finish() -> int:
        with take:
            row = claimed.pop()
        with transaction.atomic():
            if row.pk == fail:
                return int(TaskModel.objects.fail(row, worker, "Boom", ""))
            done = Completion(row, 2, "2", "2", timezone.now())
            return int(TaskModel.objects.complete([done], worker))

    return finish


def test_the_last_two_members_finishing_at_once_promote_the_callback_exactly_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="firefly_tasks")
    worker = WorkerModel.objects.create(name="racer", hostname="here", pid=1)
    for _ in range(ROUNDS):
        members, callback = (
            group(tasks.add.s(1, 1), tasks.add.s(2, 2)).then(tasks.total.s()).schedule()
        )
        claimed = TaskModel.objects.claim(["default"], 2, worker.pk)
        assert sorted(row.pk for row in claimed) == sorted(row.pk for row in members)
        assert run_at_once(completing(claimed, worker), threads=2) == [1, 1]
        callback.refresh_from_db()
        assert (callback.status, callback.waiting_for) == (TaskStatus.CREATED, 0)
        assert promotions(caplog, callback.pk) == 1
        TaskModel.objects.filter(pk=callback.pk).cancel()


def test_a_member_failing_while_the_last_one_completes_cancels_the_callback_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = WorkerModel.objects.create(name="racer", hostname="here", pid=1)
    for _ in range(ROUNDS // 4):
        members, callback = (
            group(tasks.add.s(1, 1), tasks.add.s(2, 2)).then(tasks.total.s()).schedule()
        )
        claimed = TaskModel.objects.claim(["default"], 2, worker.pk)
        assert run_at_once(completing(claimed, worker, fail=members[0].pk), threads=2) == [1, 1]
        callback.refresh_from_db()
        assert callback.status == TaskStatus.CANCELLED
        assert callback.error.startswith("DependencyFailed")
