""" "Select all" acts on what the operator was shown: the matching tasks up to the list's
bound, never those scheduled after it, on every database."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client
from django.urls import reverse

from firefly_tasks.models import TaskModel, TaskStatus
from tests.admin.conftest import make_task
from tests.testapp import tasks

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

CHANGELIST = reverse("admin:firefly_admin_task_changelist")
BOUND = re.compile(r'<input type="hidden" name="up_to_id" value="(\d+)">')


@dataclass(frozen=True)
class Action:
    name: str
    status: str  # of the tasks it changes
    confirm: dict[str, str]  # what its confirmation page posts, if it has one
    done: Callable[[TaskModel | None], bool]  # whether a task (None: deleted) was acted on

    @property
    def verb(self) -> str:
        return self.name.removesuffix("_tasks").capitalize()


ACTIONS = [
    Action("requeue_tasks", "failed", {}, lambda t: t is not None and t.status == "created"),
    Action("cancel_tasks", "created", {}, lambda t: t is not None and t.status == "cancelled"),
    Action(
        "rename_tasks",
        "failed",
        {"apply": "1", "func_name": tasks.echo.name},
        lambda t: t is not None and t.func_name == tasks.echo.name,
    ),
    Action("delete_tasks", "failed", {"post": "yes"}, lambda t: t is None),
]


def bound_in(response: TestResponse) -> str:
    found = BOUND.findall(response.content.decode())
    assert found, "the page carries no bound"
    assert len(set(found)) == 1
    return str(found[0])


def select_all(
    client: Client, action: str, url: str, bound: str | None, **extra: str
) -> TestResponse:
    """Post "select all" as the list's action form does, with the list's bound."""
    one = TaskModel.objects.order_by("pk").values_list("pk", flat=True).first()
    data: dict[str, object] = {"action": action, "index": 0, "select_across": 1}
    data["_selected_action"] = one
    if bound is not None:
        data["up_to_id"] = bound
    return client.post(url, {**data, **extra}, follow=True)


def messages_of(response: TestResponse) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def state(rows: list[TaskModel], action: Action) -> list[bool]:
    """For each row, whether the action acted on it."""
    found = TaskModel.objects.in_bulk([row.pk for row in rows])
    return [action.done(found.get(row.pk)) for row in rows]


@pytest.mark.parametrize("action", ACTIONS, ids=[action.name for action in ACTIONS])
def test_select_all_leaves_tasks_scheduled_after_the_list_was_shown_alone(
    admin_client: Client, action: Action
) -> None:
    url = f"{CHANGELIST}?status={action.status}"
    shown = [make_task(action.status) for _ in range(5)]
    make_task(TaskStatus.COMPLETED)  # matches no filter
    bound = bound_in(admin_client.get(url))

    # Scheduled while the operator looked at the list...
    meanwhile = [make_task(action.status) for _ in range(2)]
    if action.confirm:
        page = select_all(admin_client, action.name, url, bound)
        html = page.content.decode()
        assert "5 tasks selected" in html
        assert "2 newer matching tasks were scheduled since" in html
        assert bound_in(page) == bound  # posted back unchanged
    # ... and while they read the confirmation page.
    meanwhile += [make_task(action.status) for _ in range(1)]
    done = select_all(admin_client, action.name, url, bound, **action.confirm)

    assert messages_of(done) == [
        f"{action.verb}: 5 done, 0 skipped; 3 newer matching tasks left alone (scheduled "
        "after the list was shown)."
    ]
    assert state(shown, action) == [True] * 5
    assert state(meanwhile, action) == [False] * 3


@pytest.mark.parametrize("action", ACTIONS, ids=[action.name for action in ACTIONS])
def test_select_all_without_a_bound_is_refused_but_ticked_tasks_need_none(
    admin_client: Client, action: Action
) -> None:
    rows = [make_task(action.status) for _ in range(3)]
    url = f"{CHANGELIST}?status={action.status}"

    for extra in ({}, action.confirm):
        response = select_all(admin_client, action.name, url, None, **extra)

        assert response.status_code == 200
        (message,) = messages_of(response)
        assert message.startswith("Nothing was changed: this “select all” does not say")
        assert state(rows, action) == [False] * 3
    assert not LogEntry.objects.exists()

    ticked = {"action": action.name, "index": 0, "_selected_action": [rows[0].pk, rows[1].pk]}
    done = admin_client.post(url, {**ticked, **action.confirm}, follow=True)

    assert messages_of(done) == [f"{action.verb}: 2 done, 0 skipped."]
    assert state(rows, action) == [True, True, False]


@pytest.mark.parametrize("bound", ["abc", "-1", "1.0", "1e3", "9" * 30, "٣", " 3"])
@pytest.mark.parametrize("action", ACTIONS, ids=[action.name for action in ACTIONS])
def test_a_bound_that_is_not_a_task_id_is_refused(
    admin_client: Client, action: Action, bound: str
) -> None:
    rows = [make_task(action.status) for _ in range(2)]

    response = select_all(admin_client, action.name, CHANGELIST, bound, **action.confirm)

    (message,) = messages_of(response)
    assert message.startswith("Nothing was changed: the selection's bound (up_to_id=")
    assert state(rows, action) == [False] * 2


def test_every_list_page_carries_the_highest_task_id_as_bound(admin_client: Client) -> None:
    tasks.add.schedule_many([(i, i) for i in range(120)])
    newest = TaskModel.objects.order_by("-pk").values_list("pk", flat=True)[0]
    make_task(TaskStatus.FAILED)  # the newest of all, matching no filter below
    top = newest + 1

    for query in ("", "?status=created", "?o=1", f"?before={newest - 60}"):
        assert bound_in(admin_client.get(f"{CHANGELIST}{query}")) == str(top), query


def test_tasks_scheduled_while_a_delete_runs_survive_it(
    transactional_db: None, admin_client: Client
) -> None:
    """A real race: another connection keeps scheduling matching tasks, committed one by one,
    while a "select all" delete works through its chunks."""
    tasks.always_fail.schedule_many([() for _ in range(2_500)])  # three chunks
    TaskModel.objects.update(status=TaskStatus.FAILED)
    url = f"{CHANGELIST}?status=failed"
    bound = bound_in(admin_client.get(url))
    started, stop, scheduled = threading.Event(), threading.Event(), []

    def keep_scheduling() -> None:
        try:
            while not stop.is_set():
                scheduled.append(make_task(TaskStatus.FAILED).pk)
                started.set()
        finally:
            connection.close()

    other = threading.Thread(target=keep_scheduling)
    other.start()
    try:
        started.wait(10)
        response = select_all(
            admin_client, "delete_tasks", url, bound, post="yes", typed_count="2500"
        )
    finally:
        stop.set()
        other.join()

    (message,) = messages_of(response)
    found = re.fullmatch(
        r"Delete: 2,500 done, 0 skipped; (\d+) newer matching tasks? left alone "
        r"\(scheduled after the list was shown\)\.",
        message,
    )
    assert found, message
    assert 1 <= int(found[1]) <= len(scheduled)
    assert set(TaskModel.objects.values_list("pk", flat=True)) == set(scheduled)
