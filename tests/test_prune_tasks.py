"""The ``prune_tasks`` management command."""

from __future__ import annotations

import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from pytest_django import Settings

from firefly_tasks.models import AttemptOutcome, TaskAttempt, TaskModel, TaskRollup, TaskStatus

FINISHED_FIELD: dict[str, str] = {
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "cancelled",
}


def make_task(status: str, days_ago: float) -> TaskModel:
    """A task that finished (or, unfinished, was created) ``days_ago`` days ago, with an attempt."""
    when = timezone.now() - datetime.timedelta(days=days_ago)
    fields = {"created": when, "not_before": when}
    if status in FINISHED_FIELD:
        fields[FINISHED_FIELD[status]] = when
    row = TaskModel.objects.create(
        func_name="tests.testapp.tasks.add",
        queue="default",
        status=status,
        params_data="[[1,2],{}]",
        **fields,
    )
    TaskAttempt.objects.create(task=row, number=1, outcome=AttemptOutcome.FAILED)
    return row


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_tasks", *args, stdout=out)
    return out.getvalue()


def remaining() -> set[int]:
    return set(TaskModel.objects.values_list("pk", flat=True))


@pytest.fixture
def rows(db: None) -> dict[str, TaskModel]:
    return {
        "old_completed": make_task(TaskStatus.COMPLETED, 40),
        "old_failed": make_task(TaskStatus.FAILED, 40),
        "old_cancelled": make_task(TaskStatus.CANCELLED, 40),
        "recent_completed": make_task(TaskStatus.COMPLETED, 2),
        "recent_failed": make_task(TaskStatus.FAILED, 2),
        "old_created": make_task(TaskStatus.CREATED, 400),
        "old_running": make_task(TaskStatus.RUNNING, 400),
    }


def pks(rows: dict[str, TaskModel], *names: str) -> set[int]:
    return {rows[name].pk for name in names}


def test_prune_deletes_tasks_finished_more_than_30_days_ago_by_default(
    rows: dict[str, TaskModel],
) -> None:
    output = prune()

    assert output.startswith("Deleted 3 task(s) finished before ")
    assert remaining() == pks(
        rows, "recent_completed", "recent_failed", "old_created", "old_running"
    )


def test_prune_deletes_the_attempts_of_deleted_tasks(rows: dict[str, TaskModel]) -> None:
    prune()

    assert set(TaskAttempt.objects.values_list("task_id", flat=True)) == remaining()


def test_prune_never_deletes_tasks_that_have_not_finished(rows: dict[str, TaskModel]) -> None:
    prune("--days", "0")

    assert remaining() == pks(rows, "old_created", "old_running")


def test_prune_days_sets_the_retention_period(rows: dict[str, TaskModel]) -> None:
    output = prune("--days", "1.5")

    assert output.startswith("Deleted 5 task(s)")
    assert remaining() == pks(rows, "old_created", "old_running")


def test_prune_days_longer_than_every_task_deletes_nothing(rows: dict[str, TaskModel]) -> None:
    assert prune("--days", "100").startswith("Deleted 0 task(s)")
    assert len(remaining()) == len(rows)


def test_prune_status_limits_deletion_to_that_status(rows: dict[str, TaskModel]) -> None:
    prune("--status", "failed")

    assert remaining() == pks(rows, *(name for name in rows if name != "old_failed"))


def test_prune_status_can_be_repeated(rows: dict[str, TaskModel]) -> None:
    prune("--status", "completed", "--status", "cancelled", "--days", "1")

    assert remaining() == pks(rows, "old_failed", "recent_failed", "old_created", "old_running")


def test_prune_refuses_a_status_that_is_not_finished(rows: dict[str, TaskModel]) -> None:
    with pytest.raises(CommandError, match="invalid choice: 'created'"):
        prune("--status", "created")

    assert len(remaining()) == len(rows)


def test_prune_dry_run_counts_and_deletes_nothing(rows: dict[str, TaskModel]) -> None:
    output = prune("--dry-run", "--days", "1")

    assert output.startswith("Would delete 5 task(s) finished before ")
    assert len(remaining()) == len(rows)
    assert TaskAttempt.objects.count() == len(rows)


def test_prune_works_in_chunks_past_the_chunk_size(db: None) -> None:
    for _ in range(5):
        make_task(TaskStatus.COMPLETED, 40)

    deleted = TaskModel.objects.finished_before(timezone.now()).prune(chunk_size=2)

    assert deleted == 5
    assert not TaskModel.objects.exists()
    assert not TaskAttempt.objects.exists()


def rollup(days_ago: float) -> TaskRollup:
    minute = timezone.now() - datetime.timedelta(days=days_ago)
    return TaskRollup.objects.create(
        minute=minute.replace(second=0, microsecond=0),
        worker_id=1,
        slot=0,
        queue="default",
        func_name="t",
        completed=1,
    )


def test_rollups_are_kept_for_their_own_retention_of_90_days_by_default(db: None) -> None:
    kept = [rollup(40), rollup(89)]
    rollup(91)

    out = prune()

    assert "Deleted 1 rollup row(s)" in out
    assert set(TaskRollup.objects.values_list("pk", flat=True)) == {r.pk for r in kept}


def test_rollup_retention_comes_from_the_option_then_the_setting(
    db: None, settings: Settings
) -> None:
    rollup(5)
    recent = rollup(1)
    assert "Would delete 1 rollup row(s)" in prune("--rollup-days", "3", "--dry-run")
    assert TaskRollup.objects.count() == 2

    settings.FIREFLY_ROLLUP_RETENTION_DAYS = 3
    prune()

    assert list(TaskRollup.objects.values_list("pk", flat=True)) == [recent.pk]
