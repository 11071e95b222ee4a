"""The dashboard in a real browser (headless Chromium), against a live server and real
consumer processes. These run once, on SQLite: the pages are the same on every database."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.urls import reverse
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from firefly_tasks.models import QueueModel, TaskModel, TaskStatus
from tests.admin.conftest import make_task
from tests.conftest import Consumer
from tests.testapp import tasks

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("FIREFLY_TEST_DB", "sqlite") != "sqlite",
        reason="browser tests run once, on SQLite (FIREFLY_TEST_DB=sqlite)",
    ),
]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("FIREFLY_REQUIRE_BROWSER"):
            pytest.fail(f"FIREFLY_REQUIRE_BROWSER is set but {CHROMIUM} does not exist")
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # alongside it are still synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def operator(transactional_db: None, django_user_model: type[User]) -> User:
    return django_user_model.objects.create_superuser("operator", password="secret")


@pytest.fixture
def fast_polling(settings: Settings) -> None:
    settings.FIREFLY_ADMIN_POLL_INTERVAL = 0.3


def outside_the_event_loop(function: Callable[[], Any]) -> Any:
    """Run ``function`` in a thread of its own: Firefly refuses to schedule sync tasks from a
    thread running an event loop, which Playwright's sync API does."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(function())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0]


def log_in(browser: Browser, live_server: Any, next_url: str, **context: Any) -> Any:
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{live_server.url}{reverse('admin:login')}?next={next_url}")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "secret")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_url}")
    return page


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

    page.click("button[aria-label='Pause queue default']")

    page.wait_for_selector("ul.messagelist li.success")
    assert "paused" in page.inner_text("ul.messagelist")
    row = page.locator('#ff-queues tr[data-queue="default"]')
    assert row.locator(".ff-badge-paused").count() == 1
    assert QueueModel.objects.get(name="default").paused
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
