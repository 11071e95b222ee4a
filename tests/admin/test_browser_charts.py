"""The charts page in a real browser (headless Chromium): reached from the dashboard, its time
ranges switched, narrowed to one task from its table, with axes and percentiles."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from tests.admin.browser import BROWSER_TESTS, log_in, outside_the_event_loop
from tests.admin.conftest import make_rollup

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = BROWSER_TESTS

DASHBOARD = reverse("admin:firefly_admin_task_dashboard")


def test_charts_switch_ranges_and_narrow_to_a_task(
    browser: Browser, live_server: LiveServer, operator: User
) -> None:
    def history() -> None:
        now = timezone.now()
        for minutes in range(0, 60, 3):  # the last hour: a bar every third minute
            moment = now - datetime.timedelta(minutes=minutes)
            make_rollup(moment, queue="mail", func_name="shop.send", completed=10 + minutes,
                        run_b09=10, wait_b03=10)  # fmt: skip
        make_rollup(now, queue="mail", func_name="shop.bounce", failed=3, retried=2, run_b12=5)
        for hours in range(2, 24 * 6, 5):  # older: only the day and the week show them
            moment = now - datetime.timedelta(hours=hours)
            make_rollup(moment, queue="mail", func_name="shop.send", completed=100)

    outside_the_event_loop(history)
    page = log_in(browser, live_server, DASHBOARD)
    page.locator(".object-tools a:has-text('Charts')").click()
    page.wait_for_url("**/dashboard/charts/")

    completed = page.locator("#ff-chart-completed")
    assert completed.locator("rect").count() == 20
    assert page.locator("#ff-chart-failed rect").count() == 2  # failed and retried, stacked
    assert completed.locator("text[data-axis='y']").all_text_contents() == ["0", "50", "100"]
    assert len(completed.locator("text[data-axis='x']").all_text_contents()) >= 5
    assert page.locator("[data-figure='completed']").inner_text() == "770"
    run = page.locator("#ff-percentiles tr[data-times='run']")
    # 200 runs in (0.5 s, 1 s] and 5 in (10 s, 60 s]: the median is the 102.5th of the 200.
    assert run.locator("[data-quantile='50']").inner_text() == "756 ms"
    assert run.locator("[data-quantile='99']").inner_text().endswith(" s")
    page.screenshot(path="/tmp/firefly-charts-hour.png", full_page=True)

    page.locator(".ff-ranges a:has-text('7 days')").click()
    page.wait_for_url("**/charts/?range=7d")
    assert page.locator(".ff-range-current").inner_text() == "7 days"
    assert page.locator("[data-figure='completed']").inner_text() == "3,670"
    days = page.locator("#ff-chart-completed text[data-axis='x']").all_text_contents()
    assert 6 <= len(days) <= 8  # one label a day
    page.screenshot(path="/tmp/firefly-charts-week.png", full_page=True)

    page.locator("#ff-chart-tasks tr[data-task='shop.bounce'] a:has-text('shop.bounce')").click()
    page.wait_for_url("**/charts/?range=7d&queue=mail&task=shop.bounce")
    assert page.locator("[data-figure='failure-rate']").inner_text() == "100.0 %"
    assert page.locator("#ff-chart-completed rect").count() == 0
    assert page.locator("#ff-chart-tasks tbody tr").count() == 1

    page.select_option("#ff-chart-task", "")
    page.locator(".ff-chart-filters button").click()
    page.wait_for_url("**/charts/?range=7d&queue=mail&task=")
    assert page.locator("#ff-chart-tasks tbody tr").count() == 2
