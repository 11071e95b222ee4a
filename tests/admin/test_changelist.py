"""The task list's counts: "10,000+" wherever the count is capped, and the exact count on
request, bounded in time."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pytest_django import Settings

from firefly_admin import counting
from firefly_tasks.models import TaskModel, TaskStatus
from tests.admin.conftest import make_task
from tests.testapp import tasks

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

CHANGELIST = reverse("admin:firefly_admin_task_changelist")


def counts_said(response: TestResponse) -> dict[str, str]:
    """Every place of the list that says how many tasks match."""
    html = response.content.decode()

    def between(start: str, end: str) -> str:
        return html.split(start, 1)[1].split(end, 1)[0].strip() if start in html else ""

    return {
        "paginator": between('<span class="ff-result-count">', "</span>"),
        "select all": between('title="Click here to select the objects across all pages">', "<"),
        "all selected": between('<span class="all hidden">', "</span>"),
    }


def test_more_than_10000_tasks_read_10000_plus_everywhere(operator_client: Client) -> None:
    tasks.add.schedule_many([(i, i) for i in range(10_050)])

    response = operator_client.get(CHANGELIST)

    assert counts_said(response) == {
        "paginator": "10,000+ tasks",
        "select all": "Select all 10,000+ tasks",
        "all selected": "All 10,000+ selected",
    }
    html = response.content.decode()
    for bare in ("10000 results", "10000 tasks", "Select all 10000", "All 10000"):
        assert bare not in html
    assert '<a href="?count=exact" class="ff-count-exactly">Count exactly</a>' in html


def test_a_count_under_the_cap_is_exact_with_separators(admin_client: Client) -> None:
    tasks.add.schedule_many([(i, i) for i in range(1_234)])

    response = admin_client.get(CHANGELIST)

    assert counts_said(response) == {
        "paginator": "1,234 tasks",
        "select all": "Select all 1,234 tasks",
        "all selected": "All 1,234 selected",
    }
    assert "count=exact" not in response.content.decode()


def test_count_exactly_counts_every_matching_task_and_keeps_the_page(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(counting, "COUNT_LIMIT", 5)
    tasks.add.schedule_many([(i, i) for i in range(60)])
    make_task(TaskStatus.FAILED)
    query = "?before=1000000&status=created"

    capped = admin_client.get(f"{CHANGELIST}{query}")
    url = capped.context["cl"].count_exactly_url()
    exact = admin_client.get(f"{CHANGELIST}{url}")

    assert counts_said(capped)["paginator"] == "5+ tasks"
    assert all(part in url for part in ("count=exact", "before=1000000", "status=created"))
    assert counts_said(exact) == {
        "paginator": "60 tasks",
        "select all": "Select all 60 tasks",
        "all selected": "All 60 selected",
    }
    assert [row.pk for row in exact.context["cl"].result_list] == [
        row.pk for row in capped.context["cl"].result_list
    ]
    assert exact.context["cl"].count_exactly_url() is None
    # Other links forget the request: the next page counts up to the cap again.
    assert "count=" not in (exact.context["cl"].page_links()[2][2] or "")


def test_count_exactly_stays_within_the_query_budget(operator_client: Client) -> None:
    tasks.add.schedule_many([(i, i) for i in range(120)])

    with CaptureQueriesContext(connection) as queries:
        response = operator_client.get(f"{CHANGELIST}?count=exact&status=created")

    assert counts_said(response)["paginator"] == "120 tasks"
    # On PostgreSQL the count runs in a transaction of its own, rolled back: inside the
    # test's transaction, that is a savepoint, two statements more that a request served
    # in autocommit mode does not send.
    savepoints = re.compile(r"^(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT) ")
    sql = [q["sql"] for q in queries.captured_queries if not savepoints.match(q["sql"])]
    assert len(sql) <= 10, sql


def test_a_stopped_count_says_more_than_and_after_how_long(
    admin_client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "sqlite":
        pytest.skip(
            "only SQLite stops a count of a few thousand rows on time every run (its progress "
            "handler counts instructions); test_counting stops a slow count on every database"
        )
    monkeypatch.setattr(counting, "COUNT_LIMIT", 5)
    settings.FIREFLY_ADMIN_COUNT_TIMEOUT = 1e-9
    tasks.add.schedule_many([(i, i) for i in range(3_000)])

    response = admin_client.get(f"{CHANGELIST}?count=exact")

    said = counts_said(response)
    assert said["paginator"] == "more than 5 tasks (counting was stopped after 1e-09 s)"
    assert said["select all"] == "Select all 5+ tasks"
    assert ">Count again</a>" in response.content.decode()


def test_a_post_from_a_count_exactly_page_does_not_count_again(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(counting, "COUNT_LIMIT", 5)
    tasks.add.schedule_many([(i, i) for i in range(8)])
    failed = make_task(TaskStatus.FAILED)

    with CaptureQueriesContext(connection) as queries:
        admin_client.post(
            f"{CHANGELIST}?count=exact",
            {"action": "requeue_tasks", "index": 0, "_selected_action": failed.pk},
        )

    counts = [q["sql"].upper() for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql for sql in counts)
    assert TaskModel.objects.get(pk=failed.pk).status == TaskStatus.CREATED
