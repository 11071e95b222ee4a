"""The dashboard: one URL for the page and its live regions, and the queue controls."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import django
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, Settings

from firefly_tasks.models import TaskModel, TaskStatus, WorkerModel
from firefly_tasks.queues import pause_queue
from tests.admin import tasks as admin_tasks
from tests.admin.conftest import make_rollup, make_task, make_worker
from tests.testapp import tasks

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

ROOT = Path(__file__).resolve().parent.parent.parent
DASHBOARD = reverse("admin:firefly_admin_task_dashboard")
PAUSE = reverse("admin:firefly_admin_task_pause")
REGIONS = ("ff-queues", "ff-controls", "ff-workers", "ff-failures", "ff-tasks")


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


def test_htmx_is_the_pinned_copy_in_firefly_admins_static_files(admin_client: Client) -> None:
    html = admin_client.get(DASHBOARD).content.decode()

    assert '<script src="/static/firefly_admin/htmx-2.0.10.min.js" defer></script>' in html
    assert '<script src="/static/firefly_admin/live.js" defer></script>' in html
    assert "unpkg" not in html and "cdn" not in html.lower()
    assert "django_htmx" not in html  # nothing served from the django_htmx app


def test_the_pinned_htmx_is_the_one_the_docs_record() -> None:
    docs = (ROOT / "docs" / "dashboard.md").read_text()
    pinned = re.search(r"htmx (2\.\d+\.\d+)`?, sha256\s+`([0-9a-f]{64})`", docs)
    assert pinned is not None
    version, digest = pinned.groups()
    static = ROOT / "firefly_admin" / "static" / "firefly_admin"
    script = static / f"htmx-{version}.min.js"

    assert hashlib.sha256(script.read_bytes()).hexdigest() == digest
    assert f'version:"{version}"' in script.read_text()
    assert (static / f"htmx-{version}.LICENSE").read_text().startswith("Zero-Clause BSD")
    template = ROOT / "firefly_admin" / "templates" / "firefly_admin" / "dashboard.html"
    assert f"firefly_admin/htmx-{version}.min.js" in template.read_text()


def test_htmx_is_configured_for_a_strict_content_security_policy(admin_client: Client) -> None:
    html = admin_client.get(DASHBOARD).content.decode()

    meta = html.split('<meta name="htmx-config" content=\'')[1].split("'>")[0]
    assert json.loads(meta) == {
        "allowEval": False,
        "allowScriptTags": False,
        "includeIndicatorStyles": False,
    }


@pytest.mark.skipif(django.VERSION < (6, 0), reason="Django 6 has CSP nonces built in")
def test_scripts_carry_the_csp_nonce_when_the_policy_uses_one(
    admin_client: Client, settings: Settings
) -> None:
    from django.utils.csp import CSP

    settings.SECURE_CSP = {"script-src": [CSP.SELF, CSP.NONCE]}
    settings.TEMPLATES = [
        {
            **settings.TEMPLATES[0],
            "OPTIONS": {
                "context_processors": [
                    *settings.TEMPLATES[0]["OPTIONS"]["context_processors"],
                    "django.template.context_processors.csp",
                ]
            },
        }
    ]

    response = admin_client.get(DASHBOARD)

    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])
    assert nonce is not None
    for script in ("htmx-2.0.10.min.js", "live.js"):
        tag = f'<script src="/static/firefly_admin/{script}" defer nonce="{nonce[1]}"></script>'
        assert tag in response.content.decode()


@pytest.mark.parametrize(
    "url", [DASHBOARD, f"{PAUSE}?queue=default"], ids=["dashboard", "pause page"]
)
def test_pages_hold_no_inline_script_or_style(admin_client: Client, url: str) -> None:
    pause_queue("maintenance", by="ops", reason="disk full")  # a pause note on the dashboard
    html = admin_client.get(url).content.decode()
    fragments = [htmx(admin_client, region).content.decode() for region in REGIONS]

    for text in (html, *fragments):
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", text)  # every script is a file
        assert "<style" not in text
        assert not re.search(r"\sstyle=", text)
        assert not re.search(r"\son[a-z]+=", text)  # no inline event handler
        assert "javascript:" not in text


def test_regions_refresh_on_the_event_live_js_dispatches(admin_client: Client) -> None:
    html = admin_client.get(f"{DASHBOARD}?status=failed").content.decode()

    for region in REGIONS:
        element = html.split(f'id="{region}"')[1].split(">")[0]
        assert 'hx-trigger="ff:refresh from:body"' in element  # no filter: nothing to eval
        assert f'hx-get="{DASHBOARD}?status=failed"' in element
        assert 'hx-swap="outerHTML"' in element


@pytest.mark.parametrize(
    ("interval", "default"),
    [(2, "2000"), (5, "5000"), (0.3, "300"), (7, "7000"), (0.01, "100")],
)
def test_the_interval_switch_offers_off_the_usual_intervals_and_the_default(
    admin_client: Client, settings: Settings, interval: float, default: str
) -> None:
    settings.FIREFLY_ADMIN_POLL_INTERVAL = interval
    html = admin_client.get(DASHBOARD).content.decode()

    switch = html.split('<select id="ff-poll-interval">')[1].split("</select>")[0]
    values = re.findall(r'<option value="(\d+)"', switch)
    assert values[0] == "0" and "off" in switch.split("</option>")[0]
    assert values == ["0", *sorted({"1000", "2000", "5000", "15000", default}, key=int)]
    assert re.findall(r'<option value="(\d+)" selected data-default>', switch) == [default]
    assert '<p class="ff-poll" hidden>' in html  # shown by live.js: nothing to switch without it


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

    # Session, user, 2 permissions, queue control rows, depths, workers (what they execute:
    # the queue and task regions share them) and the tasks they hold, rollups, failure groups,
    # schedules, tasks, and the progress of the running tasks the list shows.
    with django_assert_max_num_queries(13):
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


def test_the_queues_region_shows_blocked_tasks_and_the_queue_limit(
    admin_client: Client, settings: Settings
) -> None:
    settings.FIREFLY_QUEUES = [{"name": "default", "concurrency": 4}, "emails"]
    limited = tasks.add.using(concurrency_limit=1, concurrency_key="account-1")
    limited.schedule_many([(i, 0) for i in range(3)])
    TaskModel.objects.claim(["default"], 10)  # one runs, two wait for its slot

    row = queue_row(htmx(admin_client, "ff-queues").content.decode(), "default")

    assert metric(row, "blocked") == (
        f'<a href="{reverse("admin:firefly_admin_task_changelist")}?status=blocked&amp;'
        'queue=default">2</a>'
    )
    assert "limit 4" in row


def test_the_dashboards_counts_carry_thousands_separators(admin_client: Client) -> None:
    from firefly_admin.display import count

    assert (count(12345), count(0), count(None)) == ("12,345", "0", "—")
    tasks.add.schedule_many([(i, i) for i in range(1200)])

    html = htmx(admin_client, "ff-queues").content.decode()

    assert '<td class="ff-number" data-metric="ready">1,200</td>' in html
