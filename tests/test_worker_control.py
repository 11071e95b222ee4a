"""Asking a consumer to stop from the database (the dashboard's "Stop gracefully"), and what its
heartbeat reports: memory and release (``firefly_tasks.worker_control``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from firefly_tasks import __version__
from firefly_tasks.models import TaskModel, TaskStatus, WorkerModel, WorkerState
from firefly_tasks.worker_control import request_stop, stop_requested_by
from tests.conftest import Consumer, wait_until
from tests.testapp import tasks

FAST = {"FIREFLY_HEARTBEAT_INTERVAL": 0.2, "FIREFLY_WORKER_TIMEOUT": 1.0}


@pytest.mark.django_db
def test_a_stop_is_asked_of_running_consumers_once_and_the_first_asker_stands() -> None:
    running = WorkerModel.objects.create(name="a", hostname="h", pid=1)
    stopped = WorkerModel.objects.create(name="b", hostname="h", pid=2, state=WorkerState.STOPPED)

    assert stop_requested_by(running.pk) is None
    assert request_stop(running.pk, by="alice") is True
    assert request_stop(running.pk, by="bob") is False
    assert stop_requested_by(running.pk) == "alice"
    assert request_stop(stopped.pk, by="alice") is False
    assert request_stop(123456, by="alice") is False


def test_a_consumer_asked_to_stop_finishes_its_task_and_exits_0(
    start_consumer: Callable[..., Consumer],
) -> None:
    busy = tasks.sleep_for.schedule(1.0)
    consumer = start_consumer("--concurrency", "1", **FAST)
    wait_until(lambda: TaskModel.objects.get(pk=busy.pk).status == TaskStatus.RUNNING)
    worker = WorkerModel.objects.get(pid=consumer.pid)
    # The heartbeat reports the release at start and the memory at each beat.
    assert worker.version == __version__
    wait_until(lambda: (WorkerModel.objects.get(pk=worker.pk).memory_kib or 0) > 1024)

    assert request_stop(worker.pk, by="operator")

    assert consumer.wait(30) == 0
    worker.refresh_from_db()
    assert worker.state == WorkerState.STOPPED
    assert TaskModel.objects.get(pk=busy.pk).status == TaskStatus.COMPLETED
