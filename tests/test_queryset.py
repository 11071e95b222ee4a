"""``TaskQuerySet``: the one writer of task state, each transition guarded by the table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.utils import timezone

from firefly_tasks.models import TaskAttempt, TaskModel, WorkerModel
from firefly_tasks.states import AttemptOutcome, TaskStatus
from tests.testapp import tasks

ROOT = Path(__file__).resolve().parent.parent
WRITER = ROOT / "firefly_tasks" / "queryset.py"
STATE_FIELDS = {"status", "attempt"}


def _sources() -> list[Path]:
    files = [*(ROOT / "firefly_tasks").rglob("*.py"), *(ROOT / "firefly_admin").rglob("*.py")]
    return [f for f in files if "migrations" not in f.parts]


def _writes_of_state(path: Path) -> list[str]:
    """Where ``path`` changes a task's state or writes an attempt row outside SQL text."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            keywords = {k.arg for k in node.keywords}
            if node.func.attr in ("update", "create") and keywords & STATE_FIELDS:
                found.append(f"{path.name}:{node.lineno} .{node.func.attr}({keywords})")
            if (
                node.func.attr in ("create", "bulk_create")
                and isinstance(node.func.value, ast.Attribute)
                and isinstance(node.func.value.value, ast.Name)
                and node.func.value.value.id == "TaskAttempt"
            ):
                found.append(f"{path.name}:{node.lineno} TaskAttempt.objects.{node.func.attr}")
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "TaskAttempt":
            found.append(f"{path.name}:{node.lineno} TaskAttempt(...)")
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for leaf in ast.walk(t):
                    if isinstance(leaf, ast.Attribute) and leaf.attr in STATE_FIELDS:
                        found.append(f"{path.name}:{node.lineno} .{leaf.attr} =")
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "SET status" in node.value
            and "dialects" not in path.parts
        ):
            found.append(f"{path.name}:{node.lineno} SQL that sets status")
    return found


def test_only_the_task_queryset_writes_task_state_and_attempts() -> None:
    assert _writes_of_state(WRITER), "the scan must see the writer's own writes"
    others = [w for f in _sources() if f != WRITER for w in _writes_of_state(f)]
    assert others == []


def test_dialects_never_name_a_task_state() -> None:
    # Every state a statement guards on or sets comes from the queryset, which reads the table.
    for path in (ROOT / "firefly_tasks" / "dialects").glob("*.py"):
        text = path.read_text()
        assert "firefly_tasks.states" not in text, path
        for state in TaskStatus:
            assert f"'{state}'" not in text and f'"{state}"' not in text.replace('"""', ""), path


@pytest.mark.parametrize(
    ("status", "method", "changed"),
    [
        (TaskStatus.CREATED, "cancel", 1),
        (TaskStatus.RUNNING, "cancel", 0),
        (TaskStatus.COMPLETED, "cancel", 0),
        (TaskStatus.FAILED, "requeue", 1),
        (TaskStatus.CANCELLED, "requeue", 1),
        (TaskStatus.COMPLETED, "requeue", 0),
        (TaskStatus.RUNNING, "requeue", 0),
    ],
)
def test_operator_transitions_change_only_rows_in_their_source_states(
    db: None, status: str, method: str, changed: int
) -> None:
    row = tasks.add.schedule(1, 2)
    TaskModel.objects.filter(pk=row.pk).update(status=status)

    assert getattr(TaskModel.objects.filter(pk=row.pk), method)() == changed


def test_a_recovery_of_an_attempt_that_moved_on_writes_nothing(db: None) -> None:
    worker = WorkerModel.objects.create(name="w", hostname="h", pid=1)
    tasks.add.schedule(1, 2)
    (claimed,) = TaskModel.objects.claim(["default"], 1, worker.pk)
    TaskModel.objects.filter(pk=claimed.pk).update(attempt=claimed.attempt + 1)

    assert TaskModel.objects.recover(claimed, worker, AttemptOutcome.LOST) is False
    assert TaskModel.objects.get(pk=claimed.pk).status == TaskStatus.RUNNING
    assert not TaskAttempt.objects.exists()


def test_a_claim_for_a_specific_row_takes_it_only_while_it_is_created(db: None) -> None:
    row = tasks.add.schedule(1, 2)
    assert TaskModel.objects.claim_row(row) is True
    assert TaskModel.objects.claim_row(row) is False
    stored = TaskModel.objects.get(pk=row.pk)
    assert (stored.status, stored.attempt) == (TaskStatus.RUNNING, 1)
    assert stored.started is not None and stored.started <= timezone.now()
