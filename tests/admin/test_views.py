"""The dashboard: one URL for the page and its live regions, and the queue controls."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, Settings

from firefly_tasks.models import QueueModel, TaskStatus, WorkerModel
from firefly_tasks.queues import pause_queue
from tests.admin import tasks as admin_tasks
from tests.admin.conftest import make_rollup, make_task, make_worker
from tests.testapp import tasks

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

DASHBOARD = reverse("admin:firefly_admin_task_dashboard")
PAUSE = reverse("admin:firefly_admin_task_pause")
RESUME = reverse("admin:firefly_admin_task_resume")
REGIONS = ("ff-queues", "ff-workers", "ff-failures", "ff-tasks")


def htmx(client: Client, target: str, url: str = DASHBOARD) -> TestResponse:
    return client.get(url, headers={"HX-Request": "true", "HX-Target": target})


def queue_row(html: str, queue: str) -> str:
    return html.split(f'data-queue="{queue}"')[1].split("</tr>")[0]


def metric(row: str, name: str) -> str:
    return row.split(f'data-metric="{name}">')[1].split("</td>")[0]


def test_dashboard_page_shows_every_region_server_rendered(admin_client: Client) -> None:
    response = admin_client.get(DASHBOARD)

    assert response.status_code == 200
    assert response.templates[0].name == "firefly_admin/dashboard.html"
    html = response.content.decode()
    for region in REGIONS:
        assert f'id="{region}"' in html
    assert '<div id="site-name">' in html  # the admin's own base template
    assert "Queue controls" in html


def test_htmx_is_served_from_static_files_never_a_cdn(admin_client: Client) -> None:
    html = admin_client.get(DASHBOARD).content.decode()
    assert '<script src="/static/django_htmx/htmx-2.min.js" defer></script>' in html
    assert "unpkg" not in html and "cdn" not in html.lower()


def test_each_region_polls_at_the_configured_interval_while_visible(
    admin_client: Client, settings: Settings
) -> None:
    settings.FIREFLY_ADMIN_POLL_INTERVAL = 5
    html = admin_client.get(f"{DASHBOARD}?status=failed").content.decode()
    trigger = "every 5000ms [document.visibilityState === &#x27;visible&#x27;]"
    for region in REGIONS:
        element = html.split(f'id="{region}"')[1].split(">")[0]
        assert f'hx-trigger="{trigger}"' in element
        assert f'hx-get="{DASHBOARD}?status=failed"' in element
        assert 'hx-swap="outerHTML"' in element


@pytest.mark.parametrize("region", REGIONS)
def test_an_htmx_request_gets_only_its_region(admin_client: Client, region: str) -> None:
    response = htmx(admin_client, region)

    assert response.status_code == 200
    html = response.content.decode().strip()
    assert html.startswith(f'<div id="{region}"')
    assert "<html" not in html
    assert {"HX-Request", "HX-Target"} <= {v.strip() for v in response["Vary"].split(",")}


@pytest.mark.parametrize("target", ["ff-nope", "<script>alert(1)</script>", "ff-tasks "])
def test_an_unknown_region_is_a_bad_request_that_never_echoes_the_header(
    admin_client: Client, target: str
) -> None:
    response = htmx(admin_client, target)

    assert response.status_code == 400
    assert response.content == b"Unknown dashboard region."
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("region", REGIONS)
def test_each_region_runs_few_queries(
    operator_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries, region: str
) -> None:
    tasks.add.schedule_many([(i, i) for i in range(50)])
    for status in (TaskStatus.RUNNING, TaskStatus.FAILED, TaskStatus.COMPLETED):
        make_task(status, worker=make_worker(f"w-{status}"))

    with django_assert_max_num_queries(10):
        response = htmx(operator_client, region)

    assert response.status_code == 200


def test_the_full_page_runs_a_bounded_number_of_queries(
    operator_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    tasks.add.schedule_many([(i, i) for i in range(50)])
    for index in range(5):
        make_task(TaskStatus.RUNNING, worker=make_worker(f"w{index}"))

    with django_assert_max_num_queries(16):
        assert operator_client.get(DASHBOARD).status_code == 200


def test_queue_region_counts_ready_scheduled_running_failed_and_completions(
    admin_client: Client,
) -> None:
    now = timezone.now()
    tasks.add.schedule_many([(i, i) for i in range(3)])
    tasks.add.schedule(1, 1, eta=now + datetime.timedelta(hours=1))
    make_task(TaskStatus.CREATED, not_before=now - datetime.timedelta(minutes=5))
    worker = make_worker("busy")
    executing = make_task(TaskStatus.RUNNING, worker=worker)
    make_task(TaskStatus.RUNNING, worker=worker)
    snapshot = [{"id": executing.pk, "name": "n", "queue": "default", "started": now.isoformat()}]
    WorkerModel.objects.filter(pk=worker.pk).update(executing=snapshot)
    make_rollup(now, completed=4, failed=1, run_seconds=0.25, wait_seconds=5.0)
    make_rollup(now - datetime.timedelta(hours=2), failed=7)
    admin_tasks.build_report.schedule("r")

    html = htmx(admin_client, "ff-queues").content.decode()

    default = queue_row(html, "default")
    assert metric(default, "ready") == "4"
    assert metric(default, "scheduled") == "1"
    assert metric(default, "executing") == "1"
    assert metric(default, "claimed") == "1"
    assert ">1</a>" in metric(default, "failed")
    assert metric(default, "oldest") == "5 min"
    assert metric(default, "completed") == "4"
    assert metric(default, "times") == "1.0 s / 50 ms"
    assert default.count('class="ff-bar"') == 1
    assert metric(queue_row(html, "reports"), "ready") == "1"


def test_queue_region_lists_known_queues_paused_ones_and_undeclared_backlogs(
    admin_client: Client,
) -> None:
    pause_queue("maintenance", by="ops")
    make_task(TaskStatus.CREATED, queue="retired")

    html = htmx(admin_client, "ff-queues").content.decode()

    assert "ff-badge-paused" in queue_row(html, "maintenance")
    assert "ff-badge-active" in queue_row(html, "default")
    assert "(undeclared)" in queue_row(html, "retired")
    assert 'data-queue="other"' in html  # named by a registered task, empty


def test_workers_region_shows_liveness_and_current_task(
    admin_client: Client, settings: Settings
) -> None:
    settings.FIREFLY_HEARTBEAT_INTERVAL = 1
    settings.FIREFLY_WORKER_TIMEOUT = 10
    now = timezone.now()
    busy = make_worker("busy", hostname="box-1", pid=101, queues=["default", "other"])
    late = make_worker("late-one", last_heartbeat=now - datetime.timedelta(seconds=5))
    make_worker("gone", last_heartbeat=now - datetime.timedelta(seconds=50))
    running = make_task(TaskStatus.RUNNING, worker=busy)
    snapshot = [{"id": running.pk, "name": "n", "queue": "default", "started": now.isoformat()}]
    WorkerModel.objects.filter(pk=busy.pk).update(executing=snapshot)

    html = htmx(admin_client, "ff-workers").content.decode()

    row = html.split('data-worker="busy"')[1].split("</tr>")[0]
    for text in ("box-1", "101", "default, other", "ff-badge-alive", f"#{running.pk}"):
        assert text in row
    assert "ff-badge-late" in html.split('data-worker="late-one"')[1].split("</tr>")[0]
    assert "ff-badge-dead" in html.split('data-worker="gone"')[1].split("</tr>")[0]
    assert f"?worker={late.pk}" in html


def test_failures_region_links_the_latest_failures(admin_client: Client) -> None:
    failed = make_task(TaskStatus.FAILED, error="KeyError: 'customer'")
    make_task(TaskStatus.COMPLETED)

    html = htmx(admin_client, "ff-failures").content.decode()

    assert reverse("admin:firefly_admin_task_change", args=[failed.pk]) in html
    assert "KeyError: &#x27;customer&#x27;" in html


def test_the_filterset_drives_the_page_and_the_fragment_alike(admin_client: Client) -> None:
    failed = make_task(TaskStatus.FAILED)
    created = make_task(TaskStatus.CREATED)
    change = reverse("admin:firefly_admin_task_change", args=[created.pk])
    query = {"status": "failed"}

    page = admin_client.get(DASHBOARD, query).content.decode()
    fragment = admin_client.get(
        DASHBOARD, query, headers={"HX-Request": "true", "HX-Target": "ff-tasks"}
    ).content.decode()

    for html in (page.split('id="ff-tasks"')[1], fragment):
        assert reverse("admin:firefly_admin_task_change", args=[failed.pk]) in html
        assert f'href="{change}"' not in html
        assert "/admin/firefly_admin/task/?status=failed" in html  # same filters, full list
    assert '<option value="failed" selected>' in page


def test_a_poll_after_logging_out_reloads_the_page(client: Client) -> None:
    response = htmx(client, "ff-queues")
    assert response.status_code == 200
    assert response["HX-Refresh"] == "true"


def test_a_plain_request_after_logging_out_goes_to_the_login_page(client: Client) -> None:
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


# Queue controls ------------------------------------------------------------------------------


def test_pause_and_resume_a_queue(operator_client: Client) -> None:
    response = operator_client.post(PAUSE, {"queue": "default"}, follow=True)

    queue = QueueModel.objects.get(name="default")
    assert queue.paused and queue.paused_by == "operator"
    assert "Queue &#x27;default&#x27; paused" in response.content.decode()
    assert "ff-badge-paused" in queue_row(response.content.decode(), "default")
    assert LogEntry.objects.get().change_message == "Paused."

    again = operator_client.post(PAUSE, {"queue": "default"}, follow=True)
    assert "was paused already" in again.content.decode()

    operator_client.post(RESUME, {"queue": "default"})
    assert not QueueModel.objects.get(name="default").paused
    assert LogEntry.objects.count() == 2


def test_queue_controls_refuse_unknown_queues_and_gets(operator_client: Client) -> None:
    response = operator_client.post(PAUSE, {"queue": "no-such-queue"}, follow=True)
    assert "not a known queue" in response.content.decode()
    assert not QueueModel.objects.exists()

    assert operator_client.get(PAUSE, {"queue": "default"}).status_code == 405
    assert not QueueModel.objects.exists()


def test_undeclared_queue_with_a_backlog_can_be_paused(operator_client: Client) -> None:
    make_task(TaskStatus.CREATED, queue="retired")

    response = operator_client.post(PAUSE, {"queue": "retired"}, follow=True)

    assert QueueModel.objects.get(name="retired").paused
    assert "ff-badge-paused" in queue_row(response.content.decode(), "retired")


def test_undeclared_queue_whose_tasks_all_finished_is_refused(operator_client: Client) -> None:
    make_task(TaskStatus.COMPLETED, queue="retired")

    response = operator_client.post(PAUSE, {"queue": "retired"}, follow=True)

    assert "not a known queue" in response.content.decode()
    assert not QueueModel.objects.exists()


def test_resume_and_pause_gets_and_posts_without_csrf_change_nothing(admin_user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    assert client.post(PAUSE, {"queue": "default"}).status_code == 403
    assert client.get(RESUME, {"queue": "default"}).status_code == 405
    assert client.post(RESUME, {"queue": "default"}).status_code == 403
    assert not QueueModel.objects.exists()


def test_workers_region_lists_executing_tasks_and_counts_the_claimed_ones(
    admin_client: Client,
) -> None:
    busy = make_worker("batcher")
    rows = [make_task(TaskStatus.RUNNING, worker=busy) for _ in range(7)]
    started = timezone.now().isoformat()
    snapshot = [{"id": r.pk, "name": "n", "queue": "default", "started": started} for r in rows[:2]]
    WorkerModel.objects.filter(pk=busy.pk).update(executing=snapshot)

    html = htmx(admin_client, "ff-workers").content.decode()

    row = html.split('data-worker="batcher"')[1].split("</tr>")[0]
    assert row.count("/firefly_admin/task/") == 4  # two executing, the claimed, all it ran
    assert f"#{rows[0].pk}" in row and f"#{rows[1].pk}" in row
    assert f"?worker={busy.pk}&amp;status=running" in row
    assert "5 claimed, waiting" in row
