"""Keyset pages of the task list: every row is reachable, ends and filters hold, cursors are
checked, and no page reads more than it shows. The lists with capped counts offer "Show all"
only where something narrows them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from django.db import connection
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from firefly_admin.pagination import MAX_ID, Cursor, keyset_page
from firefly_tasks.models import TaskModel, TaskStatus
from tests.admin.conftest import make_attempt, make_task, make_worker
from tests.testapp import tasks

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

CHANGELIST = reverse("admin:firefly_admin_task_changelist")


def shown(response: TestResponse) -> list[int]:
    """The ids of the listed tasks, in the list's order."""
    assert response.status_code == 200, response
    return [row.pk for row in response.context["cl"].result_list]


def links(response: TestResponse) -> dict[str, str | None]:
    """The page links, by name (newest, newer, older, oldest): a URL, or None if disabled."""
    return {name: url for name, _, url in response.context["cl"].page_links()}


def follow(client: Client, response: TestResponse, name: str) -> TestResponse:
    url = links(response)[name]
    assert url is not None, f"no {name} link"
    return client.get(f"{CHANGELIST}{url}")


def ids(**filters: object) -> list[int]:
    return list(TaskModel.objects.filter(**filters).order_by("-pk").values_list("pk", flat=True))


def test_every_row_of_25000_is_reached_page_by_page_and_the_oldest_in_one_click(
    admin_client: Client,
) -> None:
    tasks.add.schedule_many([(i, i) for i in range(25_000)])
    everything = ids()

    # Through the list: the first pages, and the last row, in one click on "oldest" (page
    # numbers stopped at page 200, row 10,000, with "?e=1").
    first = admin_client.get(CHANGELIST)
    second = follow(admin_client, first, "older")
    assert shown(first) + shown(second) == everything[:100]
    oldest = follow(admin_client, second, "oldest")
    assert shown(oldest) == everything[-50:]
    assert shown(oldest)[-1] == min(everything)
    assert links(oldest)["older"] is None and links(oldest)["oldest"] is None
    assert shown(follow(admin_client, oldest, "newer")) == everything[-100:-50]

    # Every page, as the list reads it (rendering 25,000 rows through the test client would
    # take minutes): each row once, in order, and no query skips rows with OFFSET.
    seen: list[int] = []
    cursor = Cursor()
    with CaptureQueriesContext(connection) as queries:
        while True:
            page = keyset_page(
                TaskModel.objects.all(), cursor, 1_000, descending=True, top=everything[0]
            )
            seen += [row.pk for row in page.rows]
            if page.older is None:
                break
            cursor = page.older
    assert seen == everything
    assert len(queries.captured_queries) == 25  # one per page
    assert not [q for q in queries.captured_queries if "OFFSET" in q["sql"].upper()]


def test_pages_descending_stop_at_both_ends(admin_client: Client) -> None:
    tasks.add.schedule_many([(i, i) for i in range(120)])
    everything = ids()

    first = admin_client.get(CHANGELIST)
    assert shown(first) == everything[:50]
    assert links(first)["newest"] is None and links(first)["newer"] is None

    second = follow(admin_client, first, "older")
    assert shown(second) == everything[50:100]
    assert shown(follow(admin_client, second, "newer")) == everything[:50]
    assert shown(follow(admin_client, second, "newest")) == everything[:50]

    third = follow(admin_client, second, "older")
    assert shown(third) == everything[100:]  # the last 20
    assert links(third)["older"] is None and links(third)["oldest"] is None
    assert shown(follow(admin_client, third, "newer")) == everything[50:100]

    oldest = follow(admin_client, first, "oldest")
    assert shown(oldest) == everything[70:]  # the 50 oldest, newest first
    assert links(oldest)["older"] is None
    assert shown(follow(admin_client, oldest, "newer")) == everything[20:70]


def test_pages_ascending_start_at_the_oldest_and_reach_the_newest(admin_client: Client) -> None:
    tasks.add.schedule_many([(i, i) for i in range(120)])
    everything = ids()[::-1]

    first = admin_client.get(f"{CHANGELIST}?o=1")
    assert shown(first) == everything[:50]
    assert links(first)["oldest"] is None and links(first)["older"] is None

    second = follow(admin_client, first, "newer")
    assert shown(second) == everything[50:100]
    assert "o=1" in (links(second)["newer"] or "")
    assert shown(follow(admin_client, second, "older")) == everything[:50]

    newest = follow(admin_client, first, "newest")
    assert shown(newest) == everything[70:]  # the 50 newest, oldest first
    assert links(newest)["newer"] is None and links(newest)["newest"] is None
    assert shown(follow(admin_client, newest, "oldest")) == everything[:50]


def test_a_list_that_fits_one_page_links_nowhere(admin_client: Client) -> None:
    tasks.add.schedule_many([(i, i) for i in range(50)])

    response = admin_client.get(CHANGELIST)

    assert len(shown(response)) == 50
    assert set(links(response).values()) == {None}
    assert "newer" in response.content.decode()  # shown, but not as links


def test_page_links_keep_filters_search_and_order_and_filters_start_over(
    admin_client: Client,
) -> None:
    tasks.add.schedule_many([(i, i) for i in range(180)])
    tasks.echo.schedule_many([("x",) for _ in range(60)])
    TaskModel.objects.alias(odd=F("pk") % 2).filter(odd=1).update(status=TaskStatus.FAILED)
    wanted = ids(status=TaskStatus.FAILED, func_name=tasks.add.name)

    query = "?status=failed&q=add&o=1"
    first = admin_client.get(f"{CHANGELIST}{query}")
    second = follow(admin_client, first, "newer")

    assert shown(first) + shown(second) == wanted[::-1][:100]
    for url in links(second).values():
        assert url is None or all(part in url for part in ("status=failed", "q=add", "o=1"))
    html = second.content.decode()
    # The filter sidebar alone (a <nav> on Django 5.2, a <search> on 6.x).
    sidebar = re.split(r"</(?:nav|search)>", html.split('id="changelist-filter"')[1])[0]
    assert not re.search(r"[?&;](after|before)=", sidebar)  # other filters: first page
    assert '<input type="hidden" name="after"' not in html  # nor does a new search


def test_the_worker_filter_pages_too(admin_client: Client) -> None:
    worker = make_worker()
    ran = [make_task(TaskStatus.COMPLETED) for _ in range(60)]
    for task in ran:
        make_attempt(task, worker=worker, outcome="completed")
    make_task(TaskStatus.COMPLETED)  # another worker's

    first = admin_client.get(f"{CHANGELIST}?worker={worker.pk}")
    second = follow(admin_client, first, "older")

    assert shown(first) + shown(second) == [task.pk for task in reversed(ran)]


@pytest.mark.parametrize(
    "query",
    [
        "before=abc",
        "before=-1",
        "after=1.5",
        "after=%EF%BC%91",  # a full-width digit one
        "before=1&after=2",
        f"before={MAX_ID + 1}",
        "after=" + "9" * 5000,
        "before=",
    ],
)
def test_a_bogus_cursor_gets_the_admins_error_redirect(admin_client: Client, query: str) -> None:
    task = make_task()

    response = admin_client.get(f"{CHANGELIST}?{query}")

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")
    assert shown(admin_client.get(f"{CHANGELIST}?before={task.pk + 1}")) == [task.pk]


def test_a_cursor_past_the_end_shows_an_empty_page_with_a_way_back(admin_client: Client) -> None:
    first = make_task()

    for query in (f"after={first.pk}", "before=1", f"after={MAX_ID}"):
        response = admin_client.get(f"{CHANGELIST}?{query}")
        assert shown(response) == []
        assert shown(follow(admin_client, response, "newest")) == [first.pk]
        assert shown(follow(admin_client, response, "oldest")) == [first.pk]


def test_only_the_id_column_sorts_and_other_orders_are_ignored(admin_client: Client) -> None:
    tasks.add.schedule_many([(i, i) for i in range(3)])
    make_task(queue="aaa")

    response = admin_client.get(CHANGELIST)
    sorted_by = admin_client.get(f"{CHANGELIST}?o=4")  # the queue column

    headers = response.content.decode().split("<thead>")[1].split("</thead>")[0]
    assert headers.count('class="sortable') == 1
    assert 'class="sortable column-id' in headers
    assert shown(sorted_by) == ids()


def test_a_cursor_page_runs_few_queries_and_no_offset_or_full_count(
    operator_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    worker = make_worker()
    tasks.add.schedule_many([(i, i) for i in range(200)])
    TaskModel.objects.update(worker=worker, status=TaskStatus.RUNNING)
    middle = ids()[100]

    with (
        django_assert_max_num_queries(11),  # and one for the running tasks' progress
        CaptureQueriesContext(connection) as queries,
    ):
        response = operator_client.get(
            f"{CHANGELIST}?before={middle}&status=running&worker={worker.pk}"
        )

    assert len(shown(response)) == 50
    sql = [q["sql"].upper() for q in queries.captured_queries]
    assert not [s for s in sql if "OFFSET" in s]
    assert all("LIMIT" in s for s in sql if "COUNT(" in s)


@pytest.mark.parametrize(
    ("query", "cursor"),
    [
        ({}, Cursor()),
        ({"before": "12"}, Cursor(before=12)),
        ({"after": "0"}, Cursor(after=0)),
        ({"after": str(MAX_ID)}, Cursor(after=MAX_ID)),
    ],
)
def test_a_cursor_reads_back_from_its_own_parameters(query: dict[str, str], cursor: Cursor) -> None:
    assert Cursor.from_query(query) == cursor
    assert Cursor.from_query(cursor.params) == cursor


@pytest.mark.parametrize(
    ("url", "narrowed"),
    [
        (reverse("admin:firefly_admin_worker_changelist"), False),
        (reverse("admin:firefly_admin_worker_changelist") + "?q=web", True),
        (reverse("admin:firefly_admin_worker_changelist") + "?state__exact=running", True),
        (CHANGELIST, False),
    ],
)
def test_show_all_is_offered_only_where_a_search_or_filter_narrows_the_list(
    admin_client: Client, url: str, narrowed: bool
) -> None:
    make_worker("web-1:1:a")
    make_worker("db-1:1:b", hostname="db-1")
    make_task(TaskStatus.FAILED)

    html = admin_client.get(url).content.decode()

    assert ("Show all" in html) is narrowed
