"""The task list at scale in a real browser (headless Chromium): counts past the cap, "select
all" bounded to what was shown, typing the count before a large delete, keyset pages. These
run once, on SQLite: the pages are the same on every database."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.urls import reverse
from pytest_django.live_server_helper import LiveServer

from firefly_tasks.models import TaskModel
from tests.admin.browser import BROWSER_TESTS, log_in, outside_the_event_loop
from tests.testapp import tasks

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = BROWSER_TESTS

CHANGELIST = reverse("admin:firefly_admin_task_changelist")
SCREENSHOTS = os.environ.get("FIREFLY_SCREENSHOTS", "")  # a directory to save them in


def schedule(count: int) -> list[int]:
    """``count`` new tasks, scheduled from another thread as a web process or task would."""
    rows = outside_the_event_loop(lambda: tasks.add.schedule_many([(i, i) for i in range(count)]))
    return [row.pk for row in rows]


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=True)


def test_select_all_past_the_cap_deletes_what_was_shown_after_typing_the_count(
    browser: Browser, live_server: LiveServer, operator: User
) -> None:
    from playwright.sync_api import expect

    shown = schedule(10_050)
    page = log_in(browser, live_server, CHANGELIST, viewport={"width": 1400, "height": 900})

    expect(page.locator(".ff-result-count")).to_have_text("10,000+ tasks")
    page.check("#action-toggle")
    question = page.locator(".actions .question a")
    expect(question).to_have_text("Select all 10,000+ tasks")
    question.click()
    expect(page.locator(".actions .all")).to_have_text("All 10,000+ selected")
    screenshot(page, "bulk-select-all")

    newer = schedule(30)  # while the operator looks at the list
    page.select_option("select[name=action]", "delete_tasks")
    page.click("button[name=index]")

    expect(page.locator(".ff-selected")).to_contain_text("10,050 tasks selected")
    expect(page.locator(".ff-newer")).to_contain_text("30 newer matching tasks")
    expect(page.locator("label[for=ff-typed-count]")).to_contain_text("10,050")
    page.fill("#ff-typed-count", "10,005")  # a typo: refused, nothing deleted
    page.click("input[type=submit][value='Yes, delete them']")
    expect(page.locator("p.errornote")).to_contain_text("you typed “10,005”, not 10,050")
    assert TaskModel.objects.count() == 10_080
    screenshot(page, "bulk-delete-confirmation")

    newer += schedule(20)  # while they read the confirmation page
    page.fill("#ff-typed-count", "10050")
    page.click("input[type=submit][value='Yes, delete them']")

    expect(page.locator("ul.messagelist li")).to_have_text(
        "Delete: 10,050 done, 0 skipped; 50 newer matching tasks left alone "
        "(scheduled after the list was shown)."
    )
    screenshot(page, "bulk-deleted")
    remaining = set(TaskModel.objects.values_list("pk", flat=True))
    assert remaining == set(newer)
    assert not remaining & set(shown)


def test_count_exactly_and_every_page_without_javascript(
    browser: Browser, live_server: LiveServer, operator: User
) -> None:
    from playwright.sync_api import expect

    ids = sorted(schedule(10_120), reverse=True)
    page = log_in(browser, live_server, CHANGELIST, java_script_enabled=False)

    page.click("a.ff-count-exactly")
    expect(page.locator(".ff-result-count")).to_have_text("10,120 tasks")
    expect(page.locator("a.ff-count-exactly")).to_have_count(0)

    page.click("a.ff-page-oldest")
    rows = page.locator("#result_list tbody tr th.field-id a")
    expect(rows.last).to_have_text(str(ids[-1]))  # the first task ever: the last row
    expect(page.locator("a.ff-page-older")).to_have_count(0)
    expect(page.locator(".ff-result-count")).to_have_text("10,000+ tasks")
    screenshot(page, "bulk-oldest-page")

    page.click("a.ff-page-newer")
    expect(rows.first).to_have_text(str(ids[-100]))
    expect(rows.last).to_have_text(str(ids[-51]))
    page.click("a.ff-page-newest")
    expect(rows.first).to_have_text(str(ids[0]))
    expect(page.locator("a.ff-page-newer")).to_have_count(0)
