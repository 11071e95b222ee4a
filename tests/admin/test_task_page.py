"""A task's page: the buttons it offers by the task's state, the fieldsets it shows, and its
flags in words."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from firefly_tasks.models import TaskModel, TaskStatus
from tests.admin.conftest import make_task


def page_of(client: Client, task: TaskModel) -> str:
    response = client.get(reverse("admin:firefly_admin_task_change", args=[task.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize(
    ("status", "offered"),
    [
        (TaskStatus.CREATED, True),
        (TaskStatus.BLOCKED, True),
        (TaskStatus.FAILED, True),
        (TaskStatus.CANCELLED, True),
        (TaskStatus.COMPLETED, False),
        (TaskStatus.RUNNING, False),
    ],
)
def test_rename_is_offered_to_tasks_that_may_run_again_under_the_new_name(
    admin_client: Client, status: str, offered: bool
) -> None:
    html = page_of(admin_client, make_task(status))

    assert ('value="rename_tasks"' in html) is offered


def test_a_task_that_never_failed_shows_no_last_failure(admin_client: Client) -> None:
    completed = page_of(admin_client, make_task(TaskStatus.COMPLETED))
    failed = page_of(admin_client, make_task(TaskStatus.FAILED))
    requeued = page_of(admin_client, make_task(TaskStatus.CREATED, traceback="Traceback …"))

    assert "Last failure" not in completed and "field-error" not in completed
    assert "Last failure" in failed and "ValueError: boom" in failed
    assert "Last failure" in requeued  # its traceback stays


@pytest.mark.parametrize(("backoff", "words"), [(False, "no"), (True, "yes")])
def test_the_retry_backoff_flag_reads_yes_or_no_never_as_an_error_icon(
    admin_client: Client, backoff: bool, words: str
) -> None:
    html = page_of(admin_client, make_task(TaskStatus.COMPLETED, retry_backoff=backoff))

    field = html.split('class="form-row field-retry_backoff_words"')[1].split('class="form-row')[0]
    assert f'<div class="readonly">{words}</div>' in field
    assert "<img" not in field  # the admin's icon-yes.svg / icon-no.svg
