"""The dashboard's live regions in a real browser (headless Chromium): on a bare install, under
a strict Content Security Policy, at the interval picked with the Refresh switch, and the live
queue controls. They run once, on SQLite: the pages are the same on every database."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import django
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.urls import reverse
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from firefly_tasks.models import QueueModel
from firefly_tasks.queues import pause_queue
from tests import csp
from tests.admin.browser import BROWSER_TESTS, TIMEOUT_MS, log_in, outside_the_event_loop
from tests.testapp import tasks

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Request

pytestmark = BROWSER_TESTS

DASHBOARD = reverse("admin:firefly_admin_task_dashboard")
REGIONS = ("ff-queues", "ff-controls", "ff-workers", "ff-failures", "ff-tasks")
POLICY = "default-src 'self'; script-src 'self'; style-src 'self'"
SCRIPT = "<script>alert('pwned')</script>"

if django.VERSION >= (6, 0):
    from django.utils.csp import CSP

    SELF: str = CSP.SELF
    CSP_MIDDLEWARE = "django.middleware.csp.ContentSecurityPolicyMiddleware"
else:  # Django 5.2 has no CSP of its own: a stand-in that reads the same setting
    SELF = csp.SELF
    CSP_MIDDLEWARE = "tests.csp.ContentSecurityPolicyMiddleware"

# Records, in the page, every violation the browser reports (Playwright's init scripts are
# not subject to the page's policy).
WATCH_VIOLATIONS = """
window.ffViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.ffViolations.push({
    directive: event.effectiveDirective, blocked: event.blockedURI,
    source: event.sourceFile, line: event.lineNumber, sample: event.sample,
  });
});
"""


def set_visibility(page: Page, state: str) -> None:
    """What the browser does when the tab is hidden or shown again (headless, it never is)."""
    page.evaluate(
        """(state) => {
          Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
          document.dispatchEvent(new Event("visibilitychange"));
        }""",
        state,
    )


@pytest.fixture
def strict_csp(settings: Settings) -> None:
    assert CSP_MIDDLEWARE in django_settings.MIDDLEWARE
    settings.SECURE_CSP = {"default-src": [SELF], "script-src": [SELF], "style-src": [SELF]}


class Watch:
    """What a page reported: browser errors, console errors and warnings, dialogs (an
    ``alert()`` a reason would run if it were not escaped), htmx requests by region."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)
        page.on("dialog", self._dialog)
        page.on("request", self._request)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        # The browser asks for /favicon.ico on its own, which the test site lacks.
        if message.type in ("error", "warning") and "/favicon.ico" not in message.location["url"]:
            self.console.append(message.text)

    def _request(self, request: Request) -> None:
        if request.headers.get("hx-request") == "true":
            self.requests.append(request.headers.get("hx-target", ""))

    def count(self, region: str) -> int:
        return self.requests.count(region)


def open_dashboard(browser: Browser, live_server: LiveServer) -> tuple[Page, Watch]:
    page = log_in(browser, live_server, DASHBOARD)
    page.add_init_script(WATCH_VIOLATIONS)
    watch = Watch(page)
    page.reload()
    page.evaluate("window.ffSamePage = true")  # gone if anything reloads the page
    return page, watch


def ready(page: Page, queue: str = "default") -> Any:
    return page.locator(f'#ff-queues tr[data-queue="{queue}"] [data-metric="ready"]')


def schedule(count: int) -> None:
    outside_the_event_loop(lambda: tasks.add.schedule_many([(i, i) for i in range(count)]))


def wait_for_refresh(page: Page, region: str) -> None:
    with page.expect_response(
        lambda response: response.request.headers.get("hx-target") == region,
        timeout=TIMEOUT_MS,
    ):
        pass


def refreshed_at_least(page: Page, watch: Watch, times: int) -> None:
    """Waits, within the tests' bound, until every region has asked for itself ``times`` times
    (the regions refresh on their own clocks: one may lag the one a check waited on)."""
    waited = 0
    while any(watch.count(region) < times for region in REGIONS):
        assert waited < TIMEOUT_MS, watch.requests
        page.wait_for_timeout(50)  # lets the page run, and its request events reach the Watch
        waited += 50


def test_a_bare_install_is_all_the_dashboard_needs(
    browser: Browser, live_server: LiveServer, operator: User, fast_polling: None
) -> None:
    from playwright.sync_api import expect

    apps = django_settings.INSTALLED_APPS
    assert "firefly_tasks" in apps and "firefly_admin" in apps
    assert not [app for app in apps if app.startswith(("django_htmx", "django_filters"))]
    assert not [name for name in django_settings.MIDDLEWARE if "htmx" in name]

    page, watch = open_dashboard(browser, live_server)

    assert page.evaluate("htmx.version") == "2.0.10"
    assert page.evaluate("htmx.config.allowEval") is False
    expect(page.locator('input[type="date"][name="created_after"]')).to_have_count(1)
    expect(ready(page)).to_have_text("0")
    schedule(4)
    expect(ready(page)).to_have_text("4")
    expect(page.locator("#ff-tasks tbody tr")).to_have_count(4)
    page.select_option("#id_status", "failed")  # the filter form, through htmx
    expect(page.locator("#ff-tasks .ff-empty")).to_have_text("No task matches.")
    expect(page).to_have_url(re.compile(r"\?status=failed"))
    assert page.evaluate("window.ffSamePage") is True
    assert watch.errors == [] and watch.console == []


def test_regions_keep_refreshing_under_a_strict_content_security_policy(
    browser: Browser,
    live_server: LiveServer,
    operator: User,
    fast_polling: None,
    strict_csp: None,
) -> None:
    from playwright.sync_api import expect

    page, watch = open_dashboard(browser, live_server)
    policy = page.request.get(f"{live_server.url}{DASHBOARD}").headers
    assert policy["content-security-policy"] == POLICY

    expect(ready(page)).to_have_text("0")
    schedule(3)
    expect(ready(page)).to_have_text("3")
    schedule(4)
    expect(ready(page)).to_have_text("7")
    outside_the_event_loop(lambda: pause_queue("default", by="cli", reason="deploy"))
    expect(page.locator('#ff-controls tr[data-queue="default"] .ff-reason')).to_have_text("deploy")
    refreshed_at_least(page, watch, 3)  # each region, not only those the checks above waited on

    assert page.evaluate("window.ffSamePage") is True
    assert page.evaluate("window.ffViolations") == []
    assert watch.errors == []
    assert watch.console == []


def test_the_interval_switch_stops_and_paces_refreshes_and_is_remembered(
    browser: Browser, live_server: LiveServer, operator: User, fast_polling: None
) -> None:
    from playwright.sync_api import expect

    page, watch = open_dashboard(browser, live_server)
    switch = page.locator("#ff-poll-interval")
    expect(switch).to_be_visible()
    expect(switch).to_have_value("300")  # FIREFLY_ADMIN_POLL_INTERVAL
    wait_for_refresh(page, "ff-queues")

    switch.select_option(label="off")
    page.wait_for_timeout(600)  # a request under way when switching off may still land
    before = len(watch.requests)
    page.wait_for_timeout(2000)  # at 0.3 s, about 6 refreshes of each region
    assert len(watch.requests) == before

    switch.select_option(label="every 1 s")
    page.wait_for_timeout(100)
    start = watch.count("ff-queues")
    page.wait_for_timeout(2500)  # the refresh on switching, then one a second
    assert 2 <= watch.count("ff-queues") - start <= 4, watch.requests

    page.reload()
    expect(page.locator("#ff-poll-interval")).to_have_value("1000")
    assert page.evaluate("localStorage.getItem('firefly_admin.poll_interval')") == "1000"
    page.locator("#ff-poll-interval").select_option(label="every 0.3 s (default)")
    assert page.evaluate("localStorage.getItem('firefly_admin.poll_interval')") is None


def test_a_hidden_tab_does_not_refresh_and_catches_up_when_shown(
    browser: Browser, live_server: LiveServer, operator: User, fast_polling: None
) -> None:
    from playwright.sync_api import expect

    page, watch = open_dashboard(browser, live_server)
    wait_for_refresh(page, "ff-queues")

    set_visibility(page, "hidden")
    page.wait_for_timeout(600)
    before = len(watch.requests)
    schedule(2)
    page.wait_for_timeout(1500)
    assert len(watch.requests) == before
    expect(ready(page)).to_have_text("0")

    set_visibility(page, "visible")
    expect(ready(page)).to_have_text("2")


def test_queue_controls_follow_pauses_made_elsewhere_and_escape_the_reason(
    browser: Browser,
    live_server: LiveServer,
    operator: User,
    fast_polling: None,
    strict_csp: None,
) -> None:
    from playwright.sync_api import expect

    page, watch = open_dashboard(browser, live_server)
    controls = page.locator('#ff-controls tr[data-queue="default"]')
    expect(controls.locator(".ff-badge-active")).to_have_count(1)

    outside_the_event_loop(lambda: pause_queue("default", by="cli", reason=SCRIPT))

    expect(controls.locator(".ff-badge-paused")).to_have_count(1)
    expect(controls.locator(".ff-reason")).to_have_text(SCRIPT)  # as text, never markup
    queues = page.locator('#ff-queues tr[data-queue="default"]')
    expect(queues.locator(".ff-reason")).to_have_text(SCRIPT)
    expect(queues.locator(".ff-pause-note")).to_contain_text("by cli")

    resume = page.locator("#ff-resume-default")
    resume.focus()
    wait_for_refresh(page, "ff-controls")
    wait_for_refresh(page, "ff-controls")  # the button was swapped, focus kept
    assert page.evaluate("document.activeElement.id") == "ff-resume-default"
    assert page.evaluate("window.ffViolations") == []

    # A refresh landing while the button is held down is dropped: the click still lands.
    resume.evaluate("button => { button.ffPressed = true; }")
    box = resume.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    wait_for_refresh(page, "ff-controls")
    wait_for_refresh(page, "ff-controls")
    assert resume.evaluate("button => button.ffPressed === true")
    page.mouse.up()
    expect(page.locator("ul.messagelist li.success")).to_contain_text("resumed")
    expect(controls.locator(".ff-badge-active")).to_have_count(1)

    page.click("a[aria-label='Pause queue default…']")
    page.fill("input[name=reason]", "x" * 300)  # the field stops at 200
    assert len(page.input_value("input[name=reason]")) == 200
    assert page.evaluate("window.ffViolations") == []  # the pause page
    page.fill("input[name=reason]", "nightly import")
    page.click("input[type=submit][value='Pause queue default']")
    expect(page.locator("ul.messagelist li.success")).to_contain_text("paused")
    expect(controls.locator(".ff-reason")).to_have_text("nightly import")
    assert QueueModel.objects.get(name="default").paused_by == "operator"

    assert watch.dialogs == []  # no alert() ran
    assert page.evaluate("window.ffViolations") == []
    assert watch.errors == [] and watch.console == []
