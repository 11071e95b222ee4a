"""Hooks (``on_success``, ``on_failure``): tasks of their own, scheduled with the finished
task's id in the transaction that records its final outcome, once per outcome."""

from __future__ import annotations

import pytest
from django.db import transaction

from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.models import TaskModel, TaskStatus
from firefly_tasks.testing import run_pending_tasks
from tests.testapp import tasks
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db(transaction=True)

HOOK = "tests.testapp.tasks.note_outcome"


def hooks_of(row: TaskModel) -> list[TaskModel]:
    return list(TaskModel.objects.filter(func_name=HOOK, params_data__contains=str(row.pk)))


def test_on_success_runs_once_with_the_task_id_after_it_completed() -> None:
    row = tasks.hooked.schedule(False)
    run_pending_tasks()
    (hook,) = TaskModel.objects.filter(func_name=HOOK)
    assert hook.params == {"args": (row.pk,), "kwargs": {}}
    assert hook.status == TaskStatus.COMPLETED
    # It ran after the task's completion committed: it saw the task completed.
    assert list(Note.objects.values_list("text", flat=True)) == [f"{row.pk} completed"]


def test_on_failure_runs_once_after_the_last_retry_not_after_each_failure() -> None:
    row = tasks.hooked.schedule(True)
    run_pending_tasks()
    row.refresh_from_db()
    assert row.status == TaskStatus.FAILED and row.attempt == 2
    assert list(Note.objects.values_list("text", flat=True)) == [f"{row.pk} failed"]


def test_cancelling_a_waiting_task_runs_its_on_failure_hook() -> None:
    row = tasks.hooked.schedule(False)
    other = tasks.add.schedule(1, 1)
    assert TaskModel.objects.filter(pk__in=[row.pk, other.pk]).cancel() == 2
    run_pending_tasks()
    assert list(Note.objects.values_list("text", flat=True)) == [f"{row.pk} cancelled"]


def test_hooks_per_call_and_a_failing_hook_never_changes_the_task() -> None:
    row = tasks.add.using(on_success=tasks.failing_hook).schedule(1, 2)
    plain = tasks.add.schedule(3, 4)
    run_pending_tasks()
    row.refresh_from_db()
    assert row.status == TaskStatus.COMPLETED and row.returned == 3
    (hook,) = TaskModel.objects.filter(func_name="tests.testapp.tasks.failing_hook")
    assert hook.status == TaskStatus.FAILED and hook.attempt == 2  # retried, visible
    assert hook.params["args"] == (row.pk,)
    assert (
        not TaskModel.objects.filter(params_data__contains=f"[{plain.pk}]")
        .exclude(pk=plain.pk)
        .exists()
    )


def test_a_rolled_back_completion_schedules_no_hook() -> None:
    row = tasks.hooked.schedule(False)
    (claimed,) = TaskModel.objects.claim(["default"], 1)
    from django.utils import timezone

    from firefly_tasks.rows import Completion

    with pytest.raises(RuntimeError), transaction.atomic():
        TaskModel.objects.complete([Completion(claimed, "ok", '"ok"', "ok", timezone.now())], None)
        assert TaskModel.objects.filter(func_name=HOOK).count() == 1  # in the transaction
        raise RuntimeError("the group commit failed")
    assert not TaskModel.objects.filter(func_name=HOOK).exists()
    assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.RUNNING


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"on_success": 12}, "must be a registered task"),
        ({"on_failure": ""}, "must be a registered task"),
    ],
)
def test_bad_hooks_fail_at_using(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidTaskError, match=message):
        tasks.add.using(**options)


def test_an_unregistered_hook_name_fails_at_schedule_and_stores_nothing() -> None:
    with pytest.raises(InvalidTaskError, match="not a registered task"):
        tasks.add.using(on_success="shop.tasks.nowhere").schedule(1, 1)
    assert not TaskModel.objects.exists()


def test_a_link_cancelled_because_the_one_before_failed_runs_its_on_failure_hook() -> None:
    from firefly_tasks import chain

    _, hooked = chain(
        tasks.always_fail.si().using(max_retries=0),
        tasks.hooked.si(False),
    ).schedule()
    run_pending_tasks()
    assert TaskModel.objects.get(pk=hooked.pk).status == TaskStatus.CANCELLED
    assert list(Note.objects.values_list("text", flat=True)) == [f"{hooked.pk} cancelled"]
