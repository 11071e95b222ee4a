"""One way of showing a point in time on every page: the local date and time to the second, the
time zone's name, and how long ago (or how soon) it is."""

from __future__ import annotations

import datetime
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings

from firefly_admin import display
from firefly_tasks.models import TaskStatus, WorkerState
from tests.admin.conftest import make_task, make_worker

# <time datetime="..." title="...">2026-12-04 14:03:07 CET</time> <span class="ff-ago">...</span>
MOMENT = re.compile(
    r'<time datetime="[^"]+" title="[^"]+">(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z+\-0-9]+)</time> '
    r'<span class="ff-ago">([^<]+)</span>'
)


def shown(html: str) -> list[tuple[str, str]]:
    return MOMENT.findall(html)


def test_a_moment_has_seconds_the_zone_and_a_relative_form(settings: Settings) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    now = timezone.now()
    winter = datetime.datetime(2026, 1, 15, 13, 3, 7, 250000, tzinfo=datetime.UTC)
    assert shown(display.moment(winter))[0][0] == "2026-01-15 14:03:07 CET"
    assert display.relative(now - datetime.timedelta(minutes=3, seconds=5), now) == "3 min ago"
    assert display.relative(now + datetime.timedelta(hours=2, minutes=1), now) == "in 2 h 1 min"
    assert display.relative(now, now) == "just now"
    assert display.relative(now - datetime.timedelta(days=2, hours=1), now) == "2 d 1 h ago"
    assert 'title="2026-01-15 14:03:07.250000 CET"' in display.moment(winter)
    assert display.moment(None) == "—"


@pytest.mark.django_db
def test_every_time_on_the_task_page_is_a_moment(operator_client: Client) -> None:
    long_ago = timezone.now() - datetime.timedelta(hours=5)
    task = make_task(
        TaskStatus.FAILED, created=long_ago, not_before=long_ago, failed=long_ago, error="E: x"
    )
    page = operator_client.get(
        reverse("admin:firefly_admin_task_change", args=[task.pk])
    ).content.decode()
    for field in ("created_at", "not_before_at", "failed_at"):
        cell = page.split(f'class="form-row field-{field}"', 1)[1].split("</div>\n", 3)
        found = shown("".join(cell))
        assert found and found[0][1] == "5 h ago", field
    # No datetime in Django's default format (e.g. "Dec. 4, 2026, 9:03 a.m.") is left.
    assert not re.search(r"\b[ap]\.m\.", page)


@pytest.mark.django_db
def test_the_lists_and_the_worker_page_show_moments(operator_client: Client) -> None:
    make_task(TaskStatus.CREATED)
    worker = make_worker(state=WorkerState.STOPPED, stopped=timezone.now())
    tasks = operator_client.get(reverse("admin:firefly_admin_task_changelist")).content.decode()
    assert len(shown(tasks)) >= 2  # created and not before
    page = operator_client.get(
        reverse("admin:firefly_admin_worker_change", args=[worker.pk])
    ).content.decode()
    assert len(shown(page)) == 3  # started, last heartbeat, stopped
    assert not re.search(r"\b[ap]\.m\.", page)
