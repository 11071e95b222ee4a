"""Workflows and progress in a real browser (headless Chromium): a running task's progress bar
in the task list and live on the dashboard, and a group's page with its members."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from firefly_tasks.models import TaskModel, TaskProgress, TaskStatus
from tests.admin.browser import BROWSER_TESTS, log_in, outside_the_event_loop
from tests.testapp import tasks

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = BROWSER_TESTS

TASKS = reverse("admin:firefly_admin_task_changelist")
DASHBOARD = reverse("admin:firefly_admin_task_dashboard")


def test_progress_shows_as_a_bar_in_the_list_and_follows_live_on_the_dashboard(
    browser: Browser, live_server: LiveServer, operator: User, fast_polling: None
) -> None:
    row = outside_the_event_loop(lambda: tasks.add.schedule(1, 2))
    TaskModel.objects.filter(pk=row.pk).update(status=TaskStatus.RUNNING, attempt=1)
    TaskProgress.objects.create(
        task_id=row.pk, done=7, total=10, message="<i>orders</i>", updated=timezone.now()
    )

    page = log_in(browser, live_server, TASKS)
    bar = page.locator(".ff-progress progress")
    assert bar.get_attribute("value") == "7" and bar.get_attribute("max") == "10"
    assert "7 of 10: <i>orders</i>" in page.locator(".ff-progress").inner_text()
    page.screenshot(path="/tmp/firefly-progress-list.png", full_page=True)

    page.goto(f"{live_server.url}{DASHBOARD}")
    live = page.locator("#ff-tasks .ff-progress progress")
    assert live.get_attribute("value") == "7"
    TaskProgress.objects.filter(task_id=row.pk).update(done=9, message="almost")
    page.wait_for_function(
        "() => document.querySelector('#ff-tasks .ff-progress progress')?.value === 9"
    )
    assert "9 of 10: almost" in page.locator("#ff-tasks .ff-progress").inner_text()
    page.screenshot(path="/tmp/firefly-progress-dashboard.png", full_page=True)


def test_a_group_callbacks_page_lists_its_members_with_links(
    browser: Browser, live_server: LiveServer, operator: User
) -> None:
    from firefly_tasks import group

    members, callback = outside_the_event_loop(
        lambda: group(tasks.add.s(i, i) for i in range(3)).then(tasks.total.s()).schedule()
    )
    TaskModel.objects.filter(pk=members[0].pk).update(status=TaskStatus.COMPLETED)
    page_url = reverse("admin:firefly_admin_task_change", args=[callback.pk])

    page = log_in(browser, live_server, page_url)
    section = page.locator(".field-waits_for")
    assert "1 of 3 done" in section.inner_text()
    assert "waiting for 3" in section.inner_text()
    section.screenshot(path="/tmp/firefly-group-workflow.png")
    section.locator(f"a:has-text('#{members[1].pk}')").click()
    page.wait_for_url(f"**/{members[1].pk}/change/")
    assert f"#{callback.pk}" in page.locator(".field-waited_for_by").inner_text()
