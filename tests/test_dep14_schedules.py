"""Django Tasks framework (DEP 14) tasks on a periodic schedule: declared like Firefly's, with
the ``TASKS`` alias of a FireflyBackend, and enqueued as that backend enqueues them."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from django.test import override_settings

from firefly_tasks import declarations, ticks
from firefly_tasks.clock import database_now
from firefly_tasks.exceptions import InvalidScheduleError
from firefly_tasks.models import ScheduleModel, TaskModel, TaskStatus
from firefly_tasks.testing import run_pending_tasks
from tests.dep14 import TASKS, require_framework
from tests.testapp.models import Note

installed_framework = require_framework()

with override_settings(TASKS=TASKS):
    from tests.testapp import dep14_tasks as t

PATH = "tests.testapp.dep14_tasks.write_note"


@pytest.fixture(autouse=True)
def tasks_setting() -> Iterator[None]:
    with override_settings(TASKS=TASKS):
        yield


def test_a_framework_task_is_declared_by_itself_or_by_path_and_alias() -> None:
    by_task = declarations.spec("notes", {"task": t.write_note, "every": 60, "args": ["x"]})
    by_path = declarations.spec(
        "notes", {"task": PATH, "backend": "default", "every": 60, "args": ["x"]}
    )

    assert (by_task.func_name, by_task.backend) == (PATH, "default")
    assert by_task == by_path
    with pytest.raises(InvalidScheduleError, match="not a FireflyBackend"):
        declarations.spec("n", {"task": PATH, "backend": "immediate", "every": 60})
    with pytest.raises(InvalidScheduleError, match="not a registered task"):
        declarations.spec("n", {"task": PATH, "every": 60})  # no alias: a Firefly name


def test_a_tick_of_a_framework_task_is_enqueued_as_its_backend_does_and_runs(db: None) -> None:
    now = database_now()
    ScheduleModel.objects.create(
        name="notes", func_name=PATH, backend="default", queue="other",
        every=datetime.timedelta(hours=1), anchor=now - datetime.timedelta(minutes=30),
        params_data='[["from a tick"], {}]', next_tick=now - datetime.timedelta(minutes=30),
    )  # fmt: skip

    ticks.enqueue_due()

    (row,) = TaskModel.objects.all()
    assert (row.func_name, row.backend, row.queue, row.serializer) == (
        PATH, "default", "other", "json",
    )  # fmt: skip
    assert (row.schedule, row.scheduled_for) == ("notes", now - datetime.timedelta(minutes=30))
    assert run_pending_tasks() == 1
    assert TaskModel.objects.get().status == TaskStatus.COMPLETED
    assert list(Note.objects.values_list("text", flat=True)) == ["from a tick"]
