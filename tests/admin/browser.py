"""What the browser tests share: headless Chromium through Playwright (never `playwright
install`: the Debian binary), an operator account, and logging in. The fixtures are made
available to the tests by ``tests/admin/conftest.py``."""

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

# Every browser test module's pytestmark: they are slow, and run once, on SQLite (the pages
# are the same on every database).
BROWSER_TESTS = [
    pytest.mark.slow,
    pytest.mark.browser,
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
