"""Every mutating endpoint and action, as anonymous, as staff lacking its permission, and as
staff holding it: only the last changes anything."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from firefly_tasks.models import QueueModel, TaskModel, TaskStatus
from firefly_tasks.queues import pause_queue
from tests.admin.conftest import ALL_PERMISSIONS, make_task
from tests.testapp import tasks


@dataclass
class Endpoint:
    name: str
    permission: str
    setup: Callable[[], Any]
    request: Callable[[Any], tuple[str, dict[str, Any]]]
    changed: Callable[[Any], bool]


def action(name: str, **extra: Any) -> Callable[[Any], tuple[str, dict[str, Any]]]:
    def build(task: TaskModel) -> tuple[str, dict[str, Any]]:
        data = {"action": name, "index": 0, "_selected_action": task.pk, **extra}
        return reverse("admin:firefly_admin_task_changelist"), data

    return build


def status_is(status: str) -> Callable[[TaskModel], bool]:
    return lambda task: TaskModel.objects.filter(pk=task.pk, status=status).exists()


def pause_default() -> str:
    pause_queue("default")
    return "default"


def is_paused(name: str) -> bool:
    return QueueModel.objects.filter(name=name, paused=True).exists()


ENDPOINTS = [
    Endpoint(
        "requeue action",
        "requeue_task",
        lambda: make_task(TaskStatus.FAILED),
        action("requeue_tasks"),
        status_is(TaskStatus.CREATED),
    ),
    Endpoint(
        "cancel action",
        "cancel_task",
        lambda: make_task(TaskStatus.CREATED),
        action("cancel_tasks"),
        status_is(TaskStatus.CANCELLED),
    ),
    Endpoint(
        "rename action",
        "rename_task",
        lambda: make_task(TaskStatus.FAILED),
        action("rename_tasks", apply="1", func_name=tasks.echo.name),
        lambda task: TaskModel.objects.filter(pk=task.pk, func_name=tasks.echo.name).exists(),
    ),
    Endpoint(
        "delete action",
        "delete_task",
        lambda: make_task(TaskStatus.FAILED),
        action("delete_tasks", post="yes"),
        lambda task: not TaskModel.objects.filter(pk=task.pk).exists(),
    ),
    Endpoint(
        "delete page",
        "delete_task",
        lambda: make_task(TaskStatus.FAILED),
        lambda task: (reverse("admin:firefly_admin_task_delete", args=[task.pk]), {"post": "yes"}),
        lambda task: not TaskModel.objects.filter(pk=task.pk).exists(),
    ),
    Endpoint(
        "pause queue",
        "pause_queue",
        lambda: "default",
        lambda name: (reverse("admin:firefly_admin_task_pause"), {"queue": name, "reason": "r"}),
        is_paused,
    ),
    Endpoint(
        "resume queue",
        "pause_queue",
        pause_default,
        lambda name: (reverse("admin:firefly_admin_task_resume"), {"queue": name}),
        lambda name: not is_paused(name),
    ),
]


@pytest.fixture(params=ENDPOINTS, ids=lambda endpoint: endpoint.name)
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    endpoint: Endpoint = request.param
    return endpoint


def test_anonymous_users_are_sent_to_the_login_page(
    db: None, client: Client, endpoint: Endpoint
) -> None:
    target = endpoint.setup()
    url, data = endpoint.request(target)

    response = client.post(url, data)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert not endpoint.changed(target)


def test_staff_without_the_permission_are_refused(
    staff_client: Callable[..., Client], endpoint: Endpoint
) -> None:
    client = staff_client(*(p for p in ALL_PERMISSIONS if p != endpoint.permission))
    target = endpoint.setup()
    url, data = endpoint.request(target)

    response = client.post(url, data, follow=True)

    assert response.status_code in (200, 403)
    if response.status_code == 200:  # an action it may not run is not offered at all
        assert "No action selected." in [str(m) for m in response.context["messages"]]
    assert not endpoint.changed(target)
    assert not LogEntry.objects.exists()


def test_staff_with_the_permission_get_it_done(
    staff_client: Callable[..., Client], endpoint: Endpoint
) -> None:
    client = staff_client("view_task", endpoint.permission)
    target = endpoint.setup()
    url, data = endpoint.request(target)

    response = client.post(url, data)

    assert response.status_code == 302
    assert endpoint.changed(target)
    assert LogEntry.objects.count() == 1
