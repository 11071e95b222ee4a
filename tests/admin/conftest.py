"""Fixtures of the dashboard's tests: users with chosen permissions, tasks in chosen states."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from firefly_tasks.models import TaskAttempt, TaskModel, TaskRollup, TaskStatus, WorkerModel
from tests.admin.browser import browser, fast_polling, operator  # noqa: F401  (fixtures)
from tests.testapp import tasks

ALL_PERMISSIONS = (
    "view_task",
    "delete_task",
    "requeue_task",
    "cancel_task",
    "rename_task",
    "pause_queue",
    "view_worker",
)


@pytest.fixture
def staff_client(db: None, django_user_model: Any) -> Callable[..., Client]:
    """A client logged in as a staff member holding exactly the given firefly_admin perms."""

    def make(*codenames: str, username: str = "staff") -> Client:
        user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(
                content_type__app_label="firefly_admin", codename__in=codenames
            )
        )
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def operator_client(staff_client: Callable[..., Client]) -> Client:
    """Staff holding every dashboard permission (not a superuser)."""
    return staff_client(*ALL_PERMISSIONS, username="operator")


def make_task(status: str = TaskStatus.CREATED, **fields: Any) -> TaskModel:
    """A task scheduled for real, then moved to ``status`` as the engine would have."""
    task = tasks.add.schedule(1, 2)
    now = timezone.now()
    changes: dict[str, Any] = {"status": status}
    if status == TaskStatus.RUNNING:
        changes.update(started=now, attempt=1)
    elif status == TaskStatus.COMPLETED:
        changes.update(
            started=now, completed=now, attempt=1, returned_data="3", returned_preview="3"
        )
    elif status == TaskStatus.FAILED:
        changes.update(
            started=now,
            failed=now,
            attempt=1,
            error="ValueError: boom",
            traceback="Traceback (most recent call last):\nValueError: boom\n",
        )
    elif status == TaskStatus.CANCELLED:
        changes.update(cancelled=now)
    changes.update(fields)
    TaskModel.objects.filter(pk=task.pk).update(**changes)
    task.refresh_from_db()
    return task


def make_attempt(task: TaskModel, number: int = 1, **fields: Any) -> TaskAttempt:
    now = timezone.now()
    values: dict[str, Any] = {
        "task": task,
        "number": number,
        "started": now - datetime.timedelta(seconds=2),
        "finished": now,
        "outcome": "failed",
        "error": "ValueError: boom",
        "traceback": "Traceback (most recent call last):\nValueError: boom\n",
    }
    values.update(fields)
    return TaskAttempt.objects.create(**values)


def make_worker(name: str = "web-1:42:abc", **fields: Any) -> WorkerModel:
    values: dict[str, Any] = {"name": name, "hostname": "web-1", "pid": 42, "queues": ["default"]}
    values.update(fields)
    return WorkerModel.objects.create(**values)


def make_rollup(minute: datetime.datetime, **fields: Any) -> TaskRollup:
    """One writer's rollup row of ``minute`` (truncated), as a consumer would have written."""
    values: dict[str, Any] = {
        "minute": minute.replace(second=0, microsecond=0),
        "worker_id": 1,
        "slot": 0,
        "queue": "default",
        "func_name": tasks.add.name,
    }
    values.update(fields)
    return TaskRollup.objects.create(**values)
