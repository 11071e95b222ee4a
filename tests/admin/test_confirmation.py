"""The rename and delete pages: counts as the action will see them, counting exactly on
request, typing the count before a large delete, and the way back to the list as it was."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from pytest_django import Settings

from firefly_admin import counting
from firefly_admin.confirmation import DELETE_ALL, TypedConfirmation
from firefly_admin.counting import Count
from firefly_tasks.models import TaskModel, TaskStatus
from tests.admin.conftest import make_task
from tests.testapp import tasks

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

CHANGELIST = reverse("admin:firefly_admin_task_changelist")


def top() -> str:
    return str(TaskModel.objects.order_by("-pk").values_list("pk", flat=True)[0])


def delete_all(client: Client, **extra: str) -> TestResponse:
    """ "Select all" of the whole list, then the delete action (or its confirmation)."""
    data = {
        "action": "delete_tasks",
        "index": 0,
        "select_across": 1,
        "up_to_id": top(),
        "_selected_action": top(),
        **extra,
    }
    return client.post(CHANGELIST, data, follow=True)


def messages_of(response: TestResponse) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def errornote(response: TestResponse) -> str:
    html = response.content.decode()
    assert 'class="errornote"' in html, "no error shown"
    return html.split('class="errornote">')[1].split("</p>")[0]


@pytest.fixture
def five_failed() -> list[TaskModel]:
    return [make_task(TaskStatus.FAILED) for _ in range(5)]


def test_a_delete_above_the_threshold_asks_for_the_number_and_refuses_anything_else(
    admin_client: Client, settings: Settings, five_failed: list[TaskModel]
) -> None:
    settings.FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE = 4

    page = delete_all(admin_client)
    html = page.content.decode()
    assert "To delete 5 tasks, type their number, <strong>5</strong>:" in html
    assert 'name="typed_count"' in html

    for typed in (None, "", "  ", "4", "6", "five", "delete all", "5 tasks"):
        extra = {} if typed is None else {"typed_count": typed}
        refused = delete_all(admin_client, post="yes", **extra)
        assert refused.status_code == 200
        assert not messages_of(refused)
        assert "5" in errornote(refused), typed
        assert 'name="typed_count"' in refused.content.decode()  # asked again
        assert TaskModel.objects.count() == 5

    done = delete_all(admin_client, post="yes", typed_count=" 5 ")

    assert messages_of(done) == ["Delete: 5 done, 0 skipped."]
    assert not TaskModel.objects.exists()


def test_the_number_is_asked_for_above_the_threshold_only(
    admin_client: Client, settings: Settings, five_failed: list[TaskModel]
) -> None:
    settings.FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE = 4
    assert 'name="typed_count"' in delete_all(admin_client).content.decode()

    settings.FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE = 5
    assert 'name="typed_count"' not in delete_all(admin_client).content.decode()
    assert messages_of(delete_all(admin_client, post="yes")) == ["Delete: 5 done, 0 skipped."]


def test_what_was_typed_and_a_forged_bound_are_shown_escaped(
    admin_client: Client, settings: Settings, five_failed: list[TaskModel]
) -> None:
    settings.FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE = 1
    evil = "<img src=x onerror=alert(1)>"

    typed = delete_all(admin_client, post="yes", typed_count=evil).content.decode()
    forged = admin_client.post(
        CHANGELIST,
        {
            "action": "delete_tasks",
            "index": 0,
            "select_across": 1,
            "up_to_id": evil,
            "_selected_action": top(),
        },
        follow=True,
    ).content.decode()

    for html in (typed, forged):
        assert evil not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert TaskModel.objects.count() == 5


def test_the_number_typed_is_checked_against_the_tasks_there_are_when_confirming(
    admin_client: Client, settings: Settings, five_failed: list[TaskModel]
) -> None:
    settings.FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE = 2
    assert "<strong>5</strong>" in delete_all(admin_client).content.decode()
    TaskModel.objects.filter(pk=five_failed[0].pk).delete()  # pruned meanwhile

    refused = delete_all(admin_client, post="yes", typed_count="5")

    assert "you typed “5”, not 4" in errornote(refused)
    assert TaskModel.objects.count() == 4
    assert messages_of(delete_all(admin_client, post="yes", typed_count="4")) == [
        "Delete: 4 done, 0 skipped."
    ]


def test_a_capped_selection_is_counted_exactly_before_asking_for_its_number(
    admin_client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(counting, "COUNT_LIMIT", 5)
    settings.FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE = 3
    tasks.add.schedule_many([(i, i) for i in range(8)])

    page = delete_all(admin_client)

    html = page.content.decode()
    assert "8 tasks selected" in html
    assert "<strong>8</strong>" in html
    assert messages_of(delete_all(admin_client, post="yes", typed_count="8")) == [
        "Delete: 8 done, 0 skipped."
    ]


def test_when_counting_is_stopped_the_page_asks_to_type_delete_all(
    admin_client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "sqlite":
        pytest.skip(
            "only SQLite stops a count of a few thousand rows on time every run (its progress "
            "handler counts instructions); test_counting stops a slow count on every database"
        )
    monkeypatch.setattr(counting, "COUNT_LIMIT", 5)
    settings.FIREFLY_ADMIN_COUNT_TIMEOUT = 1e-9
    settings.FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE = 3
    tasks.add.schedule_many([(i, i) for i in range(3_000)])

    page = delete_all(admin_client)

    html = page.content.decode()
    assert "more than 5 tasks (counting was stopped after 1e-09 s) selected" in html
    assert "type <strong>delete all</strong> to delete every one of them" in html
    refused = delete_all(admin_client, post="yes", typed_count="3000")
    assert "delete all" in errornote(refused)
    done = delete_all(admin_client, post="yes", typed_count="Delete  ALL")
    assert messages_of(done) == ["Delete: 3,000 done, 0 skipped."]


def test_rename_counts_exactly_when_asked(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(counting, "COUNT_LIMIT", 5)
    tasks.add.schedule_many([(i, i) for i in range(8)])
    data = {
        "action": "rename_tasks",
        "index": 0,
        "select_across": 1,
        "up_to_id": top(),
        "_selected_action": top(),
    }

    capped = admin_client.post(CHANGELIST, data).content.decode()
    exact = admin_client.post(CHANGELIST, {**data, "count": "exact"}).content.decode()

    assert "5+ tasks selected" in capped
    assert 'name="count" value="exact"' in capped and ">Count exactly</button>" in capped
    assert "8 tasks selected" in exact
    assert ">Count exactly</button>" not in exact


@pytest.mark.parametrize(
    ("count", "answer"),
    [
        (Count(1000), None),
        (Count(1001), "1,001"),
        (Count(100_633), "100,633"),
        (Count(10_000, capped=True, stopped_after=3.0), DELETE_ALL),
    ],
)
def test_what_a_delete_asks_to_type(settings: Settings, count: Count, answer: str | None) -> None:
    settings.FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE = 1000

    typed = TypedConfirmation.for_delete(count)

    assert (typed and typed.answer) == answer


@pytest.mark.parametrize("typed", ["100633", "100,633", "100 633", "100.633", "100'633", "100_633"])
def test_the_number_may_be_typed_with_any_thousands_separator(typed: str) -> None:
    assert TypedConfirmation("100,633").error({"typed_count": typed}) is None


@pytest.mark.parametrize("typed", ["100634", "1006330", "100,633,1", "delete all", ""])
def test_another_number_or_the_words_are_refused(typed: str) -> None:
    assert TypedConfirmation("100,633").error({"typed_count": typed}) is not None


def way_back(response: TestResponse) -> tuple[str, str]:
    """The link beside the page's submit button: ``(href, words)``."""
    found = re.search(
        r'<a href="([^"]*)" class="button cancel-link">([^<]*)</a>', response.content.decode()
    )
    assert found, "the page offers no way back"
    return found[1].replace("&amp;", "&"), found[2]


@pytest.mark.parametrize(
    ("action", "words"), [("rename_tasks", "Go back"), ("delete_tasks", "No, take me back")]
)
def test_the_way_back_returns_to_the_list_with_its_filters_and_search(
    admin_client: Client, five_failed: list[TaskModel], action: str, words: str
) -> None:
    listed = f"{CHANGELIST}?status=failed&q=add"
    data = {"action": action, "index": 0, "_selected_action": [five_failed[0].pk]}

    page = admin_client.post(listed, data)

    assert page.status_code == 200
    assert way_back(page) == (listed, words)  # never "Cancel", which cancels tasks here


def test_the_way_back_from_an_action_started_on_a_task_page_returns_to_it(
    admin_client: Client, five_failed: list[TaskModel]
) -> None:
    task = five_failed[0]
    data = {"action": "rename_tasks", "_selected_action": [task.pk], "_from_object": task.pk}

    page = admin_client.post(CHANGELIST, data)

    assert way_back(page)[0] == reverse("admin:firefly_admin_task_change", args=[task.pk])
