"""The dashboard in a French browser (headless Chromium with ``locale="fr-FR"``): the admin's
LocaleMiddleware picks French from the browser's Accept-Language, and the dashboard follows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.urls import reverse
from pytest_django.live_server_helper import LiveServer

from firefly_tasks.models import TaskModel, TaskStatus, WorkerModel
from tests.admin.browser import BROWSER_TESTS, log_in, outside_the_event_loop
from tests.admin.conftest import make_task, make_worker

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = BROWSER_TESTS

DASHBOARD = reverse("admin:firefly_admin_task_dashboard")


def test_a_french_browser_gets_the_dashboard_in_french(
    browser: Browser, live_server: LiveServer, operator: User
) -> None:
    def rows() -> tuple[TaskModel, WorkerModel]:
        return make_task(TaskStatus.FAILED), make_worker()

    outside_the_event_loop(rows)

    page = log_in(browser, live_server, DASHBOARD, locale="fr-FR")

    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.locator("#content-main h2").all_inner_texts() == [
        "Files",
        "Contrôle des files",
        "Workers",
        "Échecs des dernières 24 heures, par tâche et par erreur",
        "Planifications périodiques",
        "Dernières tâches",
    ]
    assert page.locator("#ff-failures button").inner_text() == "Remettre 1 en file"
    assert "Actualisation" in page.locator(".ff-poll").inner_text()
    page.screenshot(path="/tmp/firefly-fr-dashboard.png", full_page=True)
