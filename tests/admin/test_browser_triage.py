"""Failure triage and worker controls in a real browser (headless Chromium): the dashboard's
failure groups, a group's tasks in the list with their errors, a group requeued with one click,
and a consumer asked to stop from its page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.urls import reverse
from pytest_django.live_server_helper import LiveServer

from firefly_tasks.models import TaskModel, TaskStatus, WorkerModel
from tests.admin import tasks
from tests.admin.browser import BROWSER_TESTS, log_in, outside_the_event_loop
from tests.admin.conftest import make_task

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = BROWSER_TESTS

DASHBOARD = reverse("admin:firefly_admin_task_dashboard")


def test_a_failure_group_is_shown_opened_and_requeued(
    browser: Browser, live_server: LiveServer, operator: User
) -> None:
    def failures() -> list[TaskModel]:
        rows = [make_task(TaskStatus.FAILED, error=f"ValueError: bad sku {i}") for i in range(3)]
        rows.append(make_task(TaskStatus.FAILED, error="KeyError: 'customer'"))
        return rows

    *values, key = outside_the_event_loop(failures)

    page = log_in(browser, live_server, DASHBOARD)
    region = page.locator("#ff-failures")
    rows = region.locator("tbody tr")
    assert rows.count() == 2
    assert "KeyError" in rows.nth(0).inner_text() and "ValueError" in rows.nth(1).inner_text()
    region.screenshot(path="/tmp/firefly-triage-groups.png")

    rows.nth(1).locator("a:has-text('ValueError')").click()
    page.wait_for_url("**/task/?status=failed&task=*&error_kind=ValueError")
    listed = page.locator("#result_list tbody tr")
    assert listed.count() == 3
    assert "ValueError: bad sku" in page.locator("td.field-error_summary").first.inner_text()
    page.screenshot(path="/tmp/firefly-triage-list.png", full_page=True)

    page.goto(f"{live_server.url}{DASHBOARD}")
    page.locator("#ff-failures button:has-text('Requeue 3')").click()
    page.wait_for_url(f"**{DASHBOARD}")
    assert "Requeue: 3 done, 0 skipped" in page.locator(".messagelist").inner_text()
    statuses = dict(TaskModel.objects.values_list("pk", "status"))
    assert {statuses[row.pk] for row in values} == {TaskStatus.CREATED}
    assert statuses[key.pk] == TaskStatus.FAILED
    assert page.locator("#ff-failures tbody tr").count() == 1
    page.screenshot(path="/tmp/firefly-triage-requeued.png", full_page=True)


def test_the_task_list_searches_error_text_and_arguments(
    browser: Browser, live_server: LiveServer, operator: User
) -> None:
    def failures() -> list[TaskModel]:
        rows = [make_task(TaskStatus.FAILED, error=f"ValueError: bad sku {i}") for i in range(2)]
        rows.append(make_task(TaskStatus.FAILED, error="KeyError: 'customer'"))
        rows.append(tasks.build_report.schedule({"customer": {"id": 7}}))
        return rows

    bad, worse, key, report = outside_the_event_loop(failures)
    page = log_in(browser, live_server, reverse("admin:firefly_admin_task_changelist"))
    page.fill("#searchbar", "error:BAD SKU")
    page.press("#searchbar", "Enter")
    page.wait_for_url("**/task/?q=error*")
    ids = page.locator("#result_list tbody .field-id").all_inner_texts()
    assert sorted(int(i) for i in ids) == [bad.pk, worse.pk]
    errors = page.locator("#result_list tbody td.field-error_summary").all_inner_texts()
    assert sorted(errors) == ["ValueError: bad sku 0", "ValueError: bad sku 1"]
    page.screenshot(path="/tmp/firefly-search-error.png", full_page=True)

    page.fill("#searchbar", "args.0.customer.id:7")
    page.press("#searchbar", "Enter")
    page.wait_for_url("**/task/?q=args*")
    assert page.locator("#result_list tbody .field-id").all_inner_texts() == [str(report.pk)]
    assert key.pk not in ids


def test_a_consumer_is_asked_to_stop_from_its_page(
    browser: Browser, live_server: LiveServer, operator: User
) -> None:
    worker = outside_the_event_loop(
        lambda: WorkerModel.objects.create(
            name="web-1:42:abc", hostname="web-1", pid=42, memory_kib=80 * 1024, version="1.2.3"
        )
    )
    page = log_in(
        browser, live_server, reverse("admin:firefly_admin_worker_change", args=[worker.pk])
    )
    assert "80.0 MiB" in page.content() and "1.2.3" in page.content()

    page.locator("a:has-text('Stop gracefully')").click()
    page.wait_for_url(f"**/worker/{worker.pk}/stop/")
    page.screenshot(path="/tmp/firefly-stop-worker.png", full_page=True)
    page.locator("input[type=submit][value^='Stop']").click()
    page.wait_for_url(f"**/worker/{worker.pk}/change/")

    assert "was asked to stop" in page.locator(".messagelist").inner_text()
    assert "asked" in page.locator(".field-stop_request").inner_text()
    assert WorkerModel.objects.get(pk=worker.pk).stop_requested_by == "operator"
    page.screenshot(path="/tmp/firefly-stop-worker-asked.png", full_page=True)
