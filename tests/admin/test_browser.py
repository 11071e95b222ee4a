"""The dashboard in a real browser (headless Chromium), against a live server and real
consumer processes. These run once, on SQLite: the pages are the same on every database."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.urls import reverse
from pytest_django.live_server_helper import LiveServer

from firefly_tasks.models import QueueModel, TaskModel, TaskStatus
from tests.admin.browser import BROWSER_TESTS, log_in, outside_the_event_loop
from tests.admin.conftest import make_task
from tests.conftest import Consumer
from tests.testapp import tasks

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = BROWSER_TESTS


def test_queue_depth_follows_scheduling_and_a_real_consumer(
    browser: Browser,
    live_server: LiveServer,
    operator: User,
    fast_polling: None,
    start_consumer: Callable[..., Consumer],
) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, live_server, reverse("admin:firefly_admin_task_dashboard"))
    default = page.locator('#ff-queues tr[data-queue="default"]')
    expect(default.locator('[data-metric="ready"]')).to_have_text("0")

    outside_the_event_loop(lambda: tasks.add.schedule_many([(i, i) for i in range(7)]))

    expect(default.locator('[data-metric="ready"]')).to_have_text("7")
    assert start_consumer("--burst").wait() == 0
    expect(default.locator('[data-metric="ready"]')).to_have_text("0")
    expect(default.locator('[data-metric="completed"]')).to_have_text("7")
    expect(default.locator("rect.ff-bar")).to_have_count(1)
    expect(page.locator("#ff-workers tr[data-worker]")).to_have_count(1)
    expect(page.locator("#ff-tasks tbody tr")).to_have_count(7)


def test_pausing_a_queue_works_with_javascript_off(
    browser: Browser, live_server: LiveServer, operator: User
) -> None:
    page = log_in(
        browser,
        live_server,
        reverse("admin:firefly_admin_task_dashboard"),
        java_script_enabled=False,
    )

    page.click("a[aria-label='Pause queue default…']")

    page.wait_for_url("**/dashboard/pause/?queue=default")  # the confirmation step
    assert not QueueModel.objects.filter(paused=True).exists()
    page.fill("input[name=reason]", "payments provider down")
    page.click("input[type=submit][value='Pause queue default']")

    page.wait_for_selector("ul.messagelist li.success")
    assert "paused" in page.inner_text("ul.messagelist")
    row = page.locator('#ff-queues tr[data-queue="default"]')
    assert row.locator(".ff-badge-paused").count() == 1
    assert row.locator(".ff-reason").inner_text() == "payments provider down"
    assert QueueModel.objects.get(name="default").reason == "payments provider down"
    assert page.locator("button[aria-label='Resume queue default']").count() == 1


def test_requeue_a_failed_task_from_the_changelist(
    browser: Browser, live_server: LiveServer, operator: User
) -> None:
    failed = outside_the_event_loop(lambda: make_task(TaskStatus.FAILED))
    outside_the_event_loop(lambda: make_task(TaskStatus.COMPLETED))
    changelist = reverse("admin:firefly_admin_task_changelist")

    page = log_in(browser, live_server, changelist)
    page.check(f"input[name=_selected_action][value='{failed.pk}']")
    page.select_option("select[name=action]", "requeue_tasks")
    page.click("button[name=index]")

    page.wait_for_selector("ul.messagelist li.success")
    assert page.inner_text("ul.messagelist") == "Requeue: 1 done, 0 skipped."
    assert TaskModel.objects.get(pk=failed.pk).status == TaskStatus.CREATED
