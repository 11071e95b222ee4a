"""``current_task().set_progress()``: written at once outside the task's transaction, into a
row of its own, throttled, and never in the way of the task's own outcome."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import connection

from firefly_tasks import progress
from firefly_tasks.context import RunningTask
from firefly_tasks.models import TaskModel, TaskProgress
from firefly_tasks.progress import THROTTLE
from firefly_tasks.testing import run_pending_tasks
from tests.conftest import run_pending_in_thread, wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def released() -> Iterator[None]:
    """What a task's end does (``invoke``): the tests here report progress from this thread."""
    yield
    progress.release()


def test_progress_is_visible_while_the_task_runs_and_ends_at_its_total() -> None:
    row = tasks.report_progress.schedule(4, THROTTLE + 0.1)

    runner = run_pending_in_thread()
    # Seen from this connection while the task still runs.
    wait_until(lambda: TaskProgress.objects.filter(task_id=row.pk, done__gte=1).exists(), 30)
    assert TaskModel.objects.get(pk=row.pk).status == "running"
    runner.join(60)
    progress = TaskProgress.objects.get(task_id=row.pk)
    assert (progress.done, progress.total, progress.message) == (4, 4, "step 4")
    assert progress.percent == 100


def test_progress_is_throttled_but_the_last_step_always_written() -> None:
    row = tasks.add.schedule(1, 1)
    running = RunningTask(row)
    assert running.set_progress(1, 10) is True
    assert running.set_progress(2, 10) is False  # within the throttle
    assert TaskProgress.objects.get(task_id=row.pk).done == 1
    assert running.set_progress(10, 10) is True  # done: always written
    assert TaskProgress.objects.get(task_id=row.pk).done == 10
    time.sleep(THROTTLE)
    assert running.set_progress(3, None, "again") is True
    progress = TaskProgress.objects.get(task_id=row.pk)
    assert (progress.done, progress.total, progress.percent) == (3, None, None)


def test_an_atomic_task_reporting_progress_still_completes() -> None:
    row = tasks.report_progress_atomic.schedule(3)
    run_pending_tasks()
    row.refresh_from_db()
    assert row.status == "completed" and row.returned == 3
    assert not vars(progress._local).get("connections")  # closed when the task ended
    if connection.vendor != "sqlite":  # SQLite: the task's transaction holds the write lock
        assert TaskProgress.objects.get(task_id=row.pk).done == 3


@pytest.mark.parametrize(
    ("done", "total", "message"), [(-1, 10, ""), (1.5, 10, ""), (1, -2, ""), (1, 2, None)]
)
def test_bad_progress_is_refused(done: object, total: object, message: object) -> None:
    running = RunningTask(tasks.add.schedule(1, 1))
    with pytest.raises(ValueError, match="set_progress"):
        running.set_progress(done, total, message)  # type: ignore[arg-type]
