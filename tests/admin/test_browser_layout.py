"""The dashboard's pages lay out at a phone's width and beside the admin's nav sidebar, in the
light and the dark theme: the page itself never scrolls sideways (a wide table scrolls in its
own box), the task list's last columns fit on a wide screen, and badges stay readable (the
admin's theme variables). Screenshots of every case go to
/tmp/firefly-layout-<page>-<width>-<scheme>.png."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from firefly_tasks.clock import database_now
from firefly_tasks.models import ScheduleModel, TaskModel, TaskStatus
from tests.admin.browser import BROWSER_TESTS, log_in, outside_the_event_loop
from tests.admin.conftest import make_attempt, make_rollup, make_task, make_worker
from tests.testapp import tasks

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = BROWSER_TESTS

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}

# Long names, as real projects have them; some are no registered task (a badge says so).
NAMES = (
    "shop.tasks.send_order_confirmation_email_with_attachments",
    "billing.tasks.reconcile_payment_provider_settlements_for_merchant",
    tasks.write_note_then_fail_non_atomic.name,
    tasks.add.name,
)
STATUSES = (
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.CREATED,
    TaskStatus.RUNNING,
    TaskStatus.CANCELLED,
    TaskStatus.BLOCKED,
)
LAST_COLUMNS = ("not_before_at", "started_at", "finished_at", "duration_display")
ERROR = (
    "SMTPRecipientsRefused: {'customer-with-a-rather-long-address@example.com': (550, "
    "b'5.1.1 The email account that you tried to reach does not exist')}"
)


def busy_site() -> dict[str, Any]:
    """60 tasks in mixed states with long names and errors, 3 workers, rollups, schedules."""
    now = timezone.now()
    workers = [
        make_worker(
            f"web-{n}.prod.example.com:4{n}12:9f8e7d{n}",
            hostname=f"web-{n}.prod",
            queues=["default", "emails", "billing-reconciliation"],
            last_heartbeat=now,
        )
        for n in range(1, 4)
    ]
    rows: list[TaskModel] = []
    for i in range(60):
        status = STATUSES[i % len(STATUSES)]
        fields: dict[str, Any] = {"func_name": NAMES[i % len(NAMES)], "queue": "emails"}
        if status in (TaskStatus.RUNNING, TaskStatus.COMPLETED, TaskStatus.FAILED):
            fields["worker"] = workers[i % 3]
        if status == TaskStatus.FAILED:
            fields["error"] = ERROR
        if status == TaskStatus.CREATED:
            fields["not_before"] = now + datetime.timedelta(hours=2)
        rows.append(make_task(status, **fields))
    failed = next(row for row in rows if row.status == TaskStatus.FAILED)
    traceback = "Traceback (most recent call last):\n" + '  File "shop/mail.py"\n' * 8 + ERROR
    make_attempt(failed, 1, worker=workers[0], worker_name=workers[0].name, error=ERROR,
                 traceback=traceback)  # fmt: skip
    for minutes in range(0, 60, 7):
        moment = now - datetime.timedelta(minutes=minutes)
        make_rollup(moment, queue="emails", func_name=NAMES[0], completed=5 + minutes)
    for name in ("nightly-settlement-reconciliation-for-every-merchant", "hourly-digest"):
        ScheduleModel.objects.create(
            name=name,
            func_name=tasks.note_tick.name,
            cron="0 3 * * *",
            next_tick=database_now() + datetime.timedelta(hours=1),
        )
    return {"failed": failed.pk}


def pages(site: dict[str, Any]) -> dict[str, str]:
    return {
        "dashboard": reverse("admin:firefly_admin_task_dashboard"),
        "tasks": reverse("admin:firefly_admin_task_changelist"),
        "task": reverse("admin:firefly_admin_task_change", args=[site["failed"]]),
        "workers": reverse("admin:firefly_admin_worker_changelist"),
        "schedules": reverse("admin:firefly_admin_schedule_changelist"),
    }


def page_overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0 when it never scrolls sideways)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def unreadable_badges(page: Page) -> list[str]:
    """The badges whose text contrasts with their background less than WCAG's 4.5:1."""
    return list(
        page.evaluate(
            """() => {
                const luminance = (color) => {
                    const [r, g, b] = color.match(/[\\d.]+/g).slice(0, 3).map((v) => {
                        const c = v / 255;
                        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
                    });
                    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
                };
                const poor = [];
                for (const badge of document.querySelectorAll('.ff-badge')) {
                    const style = getComputedStyle(badge);
                    const [a, b] = [luminance(style.color), luminance(style.backgroundColor)];
                    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
                    if (ratio < 4.5) poor.push(`${badge.className}: ${ratio.toFixed(1)}:1`);
                }
                return [...new Set(poor)];
            }"""
        )
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_pages_never_scroll_sideways_on_a_phone_or_beside_the_nav_sidebar(
    browser: Browser, live_server: LiveServer, operator: User, scheme: str
) -> None:
    site = outside_the_event_loop(busy_site)
    urls = pages(site)
    problems = []
    for name, viewport in (("390", PHONE), ("1440", DESKTOP)):
        page = log_in(
            browser, live_server, urls["dashboard"], viewport=viewport, color_scheme=scheme
        )
        page.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'true')")
        for title, url in urls.items():
            page.goto(f"{live_server.url}{url}")
            if viewport is DESKTOP:
                assert page.locator("#main.shifted #nav-sidebar").is_visible(), title
            page.screenshot(path=f"/tmp/firefly-layout-{title}-{name}-{scheme}.png", full_page=True)
            if poor := unreadable_badges(page):
                problems.append(f"{title} at {name} px: badges hard to read: {poor}")
            if overflow := page_overflow(page):
                problems.append(f"{title} at {name} px: the page scrolls {overflow} px sideways")
            if title == "tasks" and viewport is DESKTOP:
                for column in LAST_COLUMNS:
                    header = f"#result_list thead th.column-{column}"
                    box = page.locator(header).bounding_box()
                    if box is None or box["x"] + box["width"] > viewport["width"]:
                        problems.append(f"tasks at {name} px: {column} is not in the window")
        page.context.close()
    assert not problems, "\n".join([scheme, *problems])


def test_the_rename_pages_way_back_lines_up_and_returns_to_the_filtered_list(
    browser: Browser, live_server: LiveServer, operator: User
) -> None:
    failed = outside_the_event_loop(lambda: make_task(TaskStatus.FAILED))
    listed = f"{reverse('admin:firefly_admin_task_changelist')}?status=failed"
    page = log_in(browser, live_server, listed, viewport=DESKTOP)
    page.check(f"input[name=_selected_action][value='{failed.pk}']")
    page.select_option("select[name=action]", "rename_tasks")
    page.click("button[name=index]")
    page.wait_for_selector("body.ff-rename")
    page.wait_for_load_state()  # its stylesheets too

    submit = page.locator(".submit-row input[type=submit]").bounding_box()
    back = page.locator(".submit-row a.cancel-link")
    box = back.bounding_box()
    words = back.evaluate(
        """(link) => {
            const range = document.createRange();
            range.selectNodeContents(link);
            const box = range.getBoundingClientRect();
            return box.top + box.height / 2;
        }"""
    )
    page.screenshot(path="/tmp/firefly-layout-rename.png", full_page=True)
    assert submit is not None and box is not None
    middle = submit["y"] + submit["height"] / 2
    # Two buttons of one height on one line, their words at the same height too.
    assert abs(box["y"] - submit["y"]) <= 1 and abs(box["height"] - submit["height"]) <= 1
    assert abs(words - middle) <= 1.5, (words, middle)
    assert back.inner_text() == "Go back"  # "Cancel" means cancelling tasks here
    back.click()
    page.wait_for_url(f"**{listed}")
