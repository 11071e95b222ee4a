"""The dashboard's queue controls: a live region, a pause page that asks why, and resuming."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from firefly_admin.forms import REASON_MAX_LENGTH
from firefly_tasks.models import QueueModel, TaskStatus
from firefly_tasks.queues import pause_queue
from tests.admin.conftest import ALL_PERMISSIONS, make_task

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

DASHBOARD = reverse("admin:firefly_admin_task_dashboard")
PAUSE = reverse("admin:firefly_admin_task_pause")
RESUME = reverse("admin:firefly_admin_task_resume")
SCRIPT = "<script>alert('pwned')</script>"


def region(client: Client, target: str) -> TestResponse:
    return client.get(DASHBOARD, headers={"HX-Request": "true", "HX-Target": target})


def queue_row(html: str, queue: str) -> str:
    return html.split(f'data-queue="{queue}"')[1].split("</tr>")[0]


def test_pausing_asks_for_a_reason_on_a_page_of_its_own(operator_client: Client) -> None:
    html = region(operator_client, "ff-controls").content.decode()
    assert f'href="{PAUSE}?queue=default"' in queue_row(html, "default")

    page = operator_client.get(PAUSE, {"queue": "default"})

    assert page.status_code == 200
    assert page.templates[0].name == "firefly_admin/pause_queue.html"
    text = page.content.decode()
    assert '<form method="post">' in text
    assert 'name="csrfmiddlewaretoken"' in text
    assert '<input type="hidden" name="queue" value="default"' in text
    assert f'name="reason" size="80" autofocus maxlength="{REASON_MAX_LENGTH}" required' in text
    assert not QueueModel.objects.exists()  # a GET changes nothing


def test_pause_with_a_reason_then_resume(
    operator_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="firefly_admin")

    response = operator_client.post(
        PAUSE, {"queue": "default", "reason": "  payments down  "}, follow=True
    )

    queue = QueueModel.objects.get(name="default")
    assert queue.paused and queue.paused_by == "operator" and queue.reason == "payments down"
    html = response.content.decode()
    assert response.redirect_chain == [(DASHBOARD, 302)]
    assert "Queue &#x27;default&#x27; paused" in html
    for region_id in ("ff-queues", "ff-controls"):
        row = queue_row(html.split(f'id="{region_id}"')[1], "default")
        assert "ff-badge-paused" in row
        assert '<q class="ff-reason">payments down</q>' in row
        assert "by operator" in row
    assert 'aria-label="Resume queue default"' in html
    assert LogEntry.objects.get().change_message == "Paused: payments down"
    assert "queue paused name=default user=operator reason='payments down'" in caplog.messages

    operator_client.post(RESUME, {"queue": "default"})
    assert not QueueModel.objects.get(name="default").paused
    assert LogEntry.objects.latest("pk").change_message == "Resumed."
    assert "queue resumed name=default user=operator" in caplog.messages


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("", "Say why the queue is paused"),
        ("   ", "Say why the queue is paused"),
        (
            "x" * (REASON_MAX_LENGTH + 1),
            f"Keep the reason to {REASON_MAX_LENGTH} characters or fewer "
            f"(this one has {REASON_MAX_LENGTH + 1}).",
        ),
    ],
    ids=["missing", "blank", "too long"],
)
def test_a_missing_or_too_long_reason_is_refused_with_a_clear_error(
    operator_client: Client, reason: str, error: str
) -> None:
    response = operator_client.post(PAUSE, {"queue": "default", "reason": reason})

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not QueueModel.objects.exists()
    assert not LogEntry.objects.exists()


def test_a_reason_of_the_longest_length_is_taken(operator_client: Client) -> None:
    operator_client.post(PAUSE, {"queue": "default", "reason": "x" * REASON_MAX_LENGTH})
    assert QueueModel.objects.get(name="default").reason == "x" * REASON_MAX_LENGTH


def test_the_reason_is_escaped_everywhere(operator_client: Client) -> None:
    operator_client.post(PAUSE, {"queue": "default", "reason": SCRIPT})
    assert QueueModel.objects.get(name="default").reason == SCRIPT

    pages = [
        operator_client.get(DASHBOARD),
        region(operator_client, "ff-queues"),
        region(operator_client, "ff-controls"),
        operator_client.get(PAUSE, {"queue": "default"}),  # "paused already", with the note
    ]

    for page in pages:
        html = page.content.decode()
        assert SCRIPT not in html
        assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html


def test_pausing_a_paused_queue_says_so_and_keeps_the_first_reason(
    operator_client: Client,
) -> None:
    pause_queue("default", by="ops", reason="deploy")

    page = operator_client.get(PAUSE, {"queue": "default"}).content.decode()
    assert "is paused already" in page and "deploy" in page and "by ops" in page
    assert 'name="reason"' not in page

    again = operator_client.post(PAUSE, {"queue": "default", "reason": "other"}, follow=True)
    assert "was paused already" in again.content.decode()
    assert QueueModel.objects.get(name="default").reason == "deploy"
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_queue_controls_refuse_unknown_queues(operator_client: Client, method: str) -> None:
    send = getattr(operator_client, method)
    response = send(PAUSE, {"queue": "no-such-queue", "reason": "r"}, follow=True)

    assert response.redirect_chain == [(DASHBOARD, 302)]
    assert "not a known queue" in response.content.decode()
    assert not QueueModel.objects.exists()


def test_undeclared_queue_with_a_backlog_can_be_paused(operator_client: Client) -> None:
    make_task(TaskStatus.CREATED, queue="retired")

    response = operator_client.post(PAUSE, {"queue": "retired", "reason": "old"}, follow=True)

    assert QueueModel.objects.get(name="retired").paused
    assert "ff-badge-paused" in queue_row(response.content.decode(), "retired")


def test_undeclared_queue_whose_tasks_all_finished_is_refused(operator_client: Client) -> None:
    make_task(TaskStatus.COMPLETED, queue="retired")

    response = operator_client.post(PAUSE, {"queue": "retired", "reason": "old"}, follow=True)

    assert "not a known queue" in response.content.decode()
    assert not QueueModel.objects.exists()


def test_posts_without_csrf_and_other_methods_change_nothing(
    admin_user: User, admin_client: Client
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    data = {"queue": "default", "reason": "r"}

    assert client.post(PAUSE, data).status_code == 403
    assert admin_client.put(PAUSE, data).status_code == 405
    assert admin_client.get(RESUME, {"queue": "default"}).status_code == 405
    assert client.post(RESUME, {"queue": "default"}).status_code == 403
    assert not QueueModel.objects.exists()


def test_the_pause_page_and_controls_region_need_the_pause_permission(
    staff_client: Callable[..., Client],
) -> None:
    client = staff_client(*(p for p in ALL_PERMISSIONS if p != "pause_queue"))

    assert client.get(PAUSE, {"queue": "default"}).status_code == 403
    assert region(client, "ff-controls").status_code == 403
    html = client.get(DASHBOARD).content.decode()
    assert 'id="ff-controls"' not in html and PAUSE not in html


def test_the_controls_region_follows_pauses_made_elsewhere(operator_client: Client) -> None:
    before = queue_row(region(operator_client, "ff-controls").content.decode(), "default")
    assert "ff-badge-active" in before and 'aria-label="Pause queue default…"' in before

    pause_queue("default", by="cli", reason="maintenance window")

    after = queue_row(region(operator_client, "ff-controls").content.decode(), "default")
    assert "ff-badge-paused" in after and 'aria-label="Resume queue default"' in after
    assert '<q class="ff-reason">maintenance window</q>' in after and "by cli" in after
