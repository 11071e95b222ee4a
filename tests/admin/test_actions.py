"""The changelist's actions: each changes only rows still in the expected state."""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from firefly_admin.models import Task
from firefly_tasks.models import TaskAttempt, TaskModel, TaskStatus, WorkerState
from tests.admin.conftest import make_attempt, make_task, make_worker
from tests.testapp import tasks

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

CHANGELIST = reverse("admin:firefly_admin_task_changelist")
ALL_STATES = (
    TaskStatus.CREATED,
    TaskStatus.RUNNING,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
)


def one_of_each() -> dict[str, TaskModel]:
    return {status: make_task(status) for status in ALL_STATES}


def run_action(
    client: Client, action: str, rows: Iterable[TaskModel], url: str = CHANGELIST, **extra: object
) -> TestResponse:
    data = {"action": action, "index": 0, "_selected_action": [row.pk for row in rows], **extra}
    return client.post(url, data, follow=True)


def shown_bound(client: Client, url: str = CHANGELIST) -> str:
    """The bound of "select all" that the task list at ``url`` carries in its action form."""
    html = client.get(url).content.decode()
    found = re.search(r'<input type="hidden" name="up_to_id" value="(\d+)">', html)
    assert found, "the list carries no bound"
    return found[1]


def statuses(rows: dict[str, TaskModel]) -> dict[str, str]:
    return {name: TaskModel.objects.get(pk=row.pk).status for name, row in rows.items()}


def messages_of(response: TestResponse) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def logged_ids(flag: int = CHANGE) -> set[int]:
    content_type = ContentType.objects.get_for_model(Task, for_concrete_model=False)
    entries = LogEntry.objects.filter(content_type=content_type, action_flag=flag)
    logged = set()
    for pk in entries.values_list("object_id", flat=True):
        assert pk is not None
        logged.add(int(pk))
    return logged


def test_requeue_turns_failed_and_cancelled_tasks_into_ready_ones_and_keeps_attempts(
    admin_client: Client,
) -> None:
    rows = one_of_each()
    make_attempt(rows["failed"])
    # A worker that failed it after retries, as the row would read then.
    TaskModel.objects.filter(pk=rows["failed"].pk).update(
        retry_attempts=3, worker=make_worker("failed-it")
    )

    response = run_action(admin_client, "requeue_tasks", rows.values())

    assert messages_of(response) == [
        "Requeue: 2 done, 3 skipped (not failed, cancelled or orphaned)."
    ]
    assert statuses(rows) == {
        "created": "created",
        "running": "running",
        "completed": "completed",
        "failed": "created",
        "cancelled": "created",
    }
    failed = TaskModel.objects.get(pk=rows["failed"].pk)
    assert failed.error == "" and failed.failed is None and failed.not_before <= timezone.now()
    assert (failed.worker_id, failed.retry_attempts, failed.traceback) == (None, 0, "")
    assert TaskAttempt.objects.filter(task_id=failed.pk).count() == 1
    assert logged_ids() == {rows["failed"].pk, rows["cancelled"].pk}


def test_cancel_touches_only_tasks_waiting_to_run(admin_client: Client) -> None:
    rows = one_of_each()

    response = run_action(admin_client, "cancel_tasks", rows.values())

    assert messages_of(response) == ["Cancel: 1 done, 4 skipped (not waiting to run or orphaned)."]
    assert statuses(rows)["created"] == "cancelled"
    assert statuses(rows)["running"] == "running"
    assert logged_ids() == {rows["created"].pk}


def test_rename_asks_for_a_registered_name_first(admin_client: Client) -> None:
    rows = one_of_each()

    response = run_action(admin_client, "rename_tasks", rows.values())

    assert response.status_code == 200
    html = response.content.decode()
    assert "5 tasks selected" in html
    assert f'<option value="{tasks.write_note.name}">' in html
    for row in rows.values():
        assert f'name="_selected_action" value="{row.pk}"' in html
    assert 'name="apply"' in html
    assert TaskModel.objects.filter(func_name=tasks.add.name).count() == 5


def test_rename_moves_tasks_that_are_not_running(admin_client: Client) -> None:
    rows = one_of_each()

    response = run_action(
        admin_client, "rename_tasks", rows.values(), apply="1", func_name=tasks.echo.name
    )

    assert messages_of(response) == ["Rename: 4 done, 1 skipped (running, or named so already)."]
    names = dict(TaskModel.objects.values_list("status", "func_name"))
    assert names["running"] == tasks.add.name
    assert {names[s] for s in ("created", "completed", "failed", "cancelled")} == {tasks.echo.name}
    entry = LogEntry.objects.get(object_id=str(rows["failed"].pk))
    assert entry.change_message == f"Renamed from {tasks.add.name} to {tasks.echo.name}."


@pytest.mark.parametrize(
    "name", ["os.system", "tests.testapp.tasks", "tests.testapp.tasks.nope", ""]
)
def test_rename_refuses_a_name_that_is_not_a_registered_task(
    admin_client: Client, name: str
) -> None:
    task = make_task(TaskStatus.FAILED)

    response = run_action(admin_client, "rename_tasks", [task], apply="1", func_name=name)

    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert TaskModel.objects.get(pk=task.pk).func_name == tasks.add.name
    assert not LogEntry.objects.exists()


def test_delete_confirms_with_counts_then_deletes_all_but_running_tasks(
    admin_client: Client,
) -> None:
    rows = one_of_each()
    for number in range(1, 41):
        make_attempt(rows["failed"], number)

    confirm = run_action(admin_client, "delete_tasks", rows.values())

    html = confirm.content.decode()
    assert "Deleting them also deletes 40 attempts" in html
    assert "1 running task will be skipped" in html
    assert html.count("ValueError: boom") == 0  # attempts are counted, not listed
    assert TaskModel.objects.count() == 5

    done = run_action(admin_client, "delete_tasks", rows.values(), post="yes")

    assert messages_of(done) == ["Delete: 4 done, 1 skipped (running on a live worker)."]
    assert list(TaskModel.objects.values_list("status", flat=True)) == ["running"]
    assert not TaskAttempt.objects.exists()
    assert logged_ids(DELETION) == {row.pk for name, row in rows.items() if name != "running"}


def running_tasks() -> dict[str, TaskModel]:
    """Running rows that no live worker holds, and two that are not orphans."""
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    rows = {
        "no worker": make_task(TaskStatus.RUNNING, started=long_ago),
        "worker pruned": make_task(TaskStatus.RUNNING, started=long_ago, worker_id=MISSING),
        "worker stopped": make_task(
            TaskStatus.RUNNING,
            started=long_ago,
            worker=make_worker("stopped", state=WorkerState.STOPPED),
        ),
        "worker dead": make_task(
            TaskStatus.RUNNING, started=long_ago, worker=make_worker("dead", state=WorkerState.DEAD)
        ),
        "live worker": make_task(TaskStatus.RUNNING, started=long_ago, worker=make_worker("live")),
        # Claimed a moment ago with no worker, as run_pending_tasks() does: not yet an orphan.
        "just claimed": make_task(TaskStatus.RUNNING),
    }
    return rows


# A worker row pruned without Django's SET_NULL (a raw DELETE): the task still names it.
MISSING = 2**31 - 1
ORPHANS = ("no worker", "worker pruned", "worker stopped", "worker dead")
HELD = ("live worker", "just claimed")


def test_requeue_returns_orphaned_running_tasks_to_the_queue(admin_client: Client) -> None:
    rows = running_tasks()

    response = run_action(admin_client, "requeue_tasks", rows.values())

    assert messages_of(response) == [
        "Requeue: 4 done, 2 skipped (not failed, cancelled or orphaned)."
    ]
    assert statuses(rows) == {name: "created" if name in ORPHANS else "running" for name in rows}
    for name in ORPHANS:
        task = TaskModel.objects.get(pk=rows[name].pk)
        assert task.worker_id is None and task.not_before <= timezone.now()
        (attempt,) = TaskAttempt.objects.filter(task_id=task.pk)
        assert (attempt.number, attempt.outcome) == (1, "interrupted")
        assert "requeued from the admin" in attempt.error
    assert TaskAttempt.objects.get(task_id=rows["worker dead"].pk).worker_name == "dead"
    assert logged_ids() == {rows[name].pk for name in ORPHANS}


def test_cancel_ends_orphaned_running_tasks(admin_client: Client) -> None:
    rows = running_tasks()

    response = run_action(admin_client, "cancel_tasks", rows.values())

    assert messages_of(response) == ["Cancel: 4 done, 2 skipped (not waiting to run or orphaned)."]
    assert statuses(rows) == {name: "cancelled" if name in ORPHANS else "running" for name in rows}
    assert set(TaskAttempt.objects.values_list("task_id", "outcome")) == {
        (rows[name].pk, "interrupted") for name in ORPHANS
    }
    assert logged_ids() == {rows[name].pk for name in ORPHANS}


def test_delete_removes_orphaned_running_tasks_but_not_those_a_live_worker_holds(
    admin_client: Client,
) -> None:
    rows = running_tasks()

    confirm = run_action(admin_client, "delete_tasks", rows.values())

    assert "2 running tasks will be skipped" in confirm.content.decode()

    done = run_action(admin_client, "delete_tasks", rows.values(), post="yes")

    assert messages_of(done) == ["Delete: 4 done, 2 skipped (running on a live worker)."]
    assert set(TaskModel.objects.values_list("pk", flat=True)) == {rows[name].pk for name in HELD}


def test_an_orphaned_task_page_offers_requeue_cancel_and_delete(admin_client: Client) -> None:
    rows = running_tasks()

    for name, row in rows.items():
        html = admin_client.get(reverse("admin:firefly_admin_task_change", args=[row.pk])).content
        offered = {
            action
            for action in ("requeue_tasks", "cancel_tasks")
            if f'value="{action}"' in html.decode()
        }
        delete = reverse("admin:firefly_admin_task_delete", args=[row.pk])
        if name in ORPHANS:
            assert offered == {"requeue_tasks", "cancel_tasks"}, name
            assert delete in html.decode() and "no live worker holds it" in html.decode()
        else:
            assert offered == set(), name
            assert delete not in html.decode()
            assert admin_client.post(delete, {"post": "yes"}).status_code == 403

    for name in ORPHANS:
        delete = reverse("admin:firefly_admin_task_delete", args=[rows[name].pk])
        assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert set(TaskModel.objects.values_list("pk", flat=True)) == {rows[name].pk for name in HELD}


def test_actions_never_run_on_a_get(admin_client: Client) -> None:
    task = make_task(TaskStatus.FAILED)

    query: dict[str, str | int] = {
        "action": "requeue_tasks",
        "index": 0,
        "_selected_action": task.pk,
    }
    response = admin_client.get(CHANGELIST, query)

    assert response.status_code in (200, 302)
    assert TaskModel.objects.get(pk=task.pk).status == "failed"
    assert not LogEntry.objects.exists()


def test_actions_need_the_csrf_token(admin_user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    task = make_task(TaskStatus.FAILED)

    response = client.post(
        CHANGELIST, {"action": "requeue_tasks", "index": 0, "_selected_action": task.pk}
    )

    assert response.status_code == 403
    assert TaskModel.objects.get(pk=task.pk).status == "failed"


def test_an_action_started_from_the_task_page_returns_to_it(admin_client: Client) -> None:
    task = make_task(TaskStatus.FAILED)
    page = admin_client.get(reverse("admin:firefly_admin_task_change", args=[task.pk]))
    assert 'value="requeue_tasks"' in page.content.decode()

    response = admin_client.post(
        CHANGELIST,
        {"action": "requeue_tasks", "_selected_action": task.pk, "_from_object": task.pk},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:firefly_admin_task_change", args=[task.pk])
    assert TaskModel.objects.get(pk=task.pk).status == "created"


def test_select_across_requeues_ten_thousand_failed_tasks_in_one_quick_request(
    admin_client: Client, figure: Callable[..., None]
) -> None:
    tasks.always_fail.schedule_many([() for _ in range(10_000)])
    TaskModel.objects.update(status=TaskStatus.FAILED, failed=timezone.now(), error="E")
    make_task(TaskStatus.RUNNING)
    one = TaskModel.objects.filter(status=TaskStatus.FAILED).first()
    assert one is not None

    url = f"{CHANGELIST}?task={tasks.always_fail.name}"
    bound = shown_bound(admin_client, url)

    began = time.perf_counter()
    response = admin_client.post(
        url,
        {
            "action": "requeue_tasks",
            "index": 0,
            "select_across": 1,
            "up_to_id": bound,
            "_selected_action": one.pk,
        },
    )
    elapsed = time.perf_counter() - began

    figure(requeued=10_000, request_s=elapsed)
    assert response.status_code == 302
    assert TaskModel.objects.filter(status=TaskStatus.CREATED).count() == 10_000
    assert TaskModel.objects.filter(status=TaskStatus.RUNNING).count() == 1
    assert LogEntry.objects.count() == 10_000
    assert elapsed < 30, f"bulk requeue took {elapsed:.1f}s"


def test_cancel_stopping_running_ones_cancels_waiting_and_running_tasks(
    admin_client: Client,
) -> None:
    rows = one_of_each()
    live = make_worker("live", state=WorkerState.RUNNING)
    TaskModel.objects.filter(pk=rows["running"].pk).update(worker=live, attempt=1)
    page = admin_client.get(reverse("admin:firefly_admin_task_change", args=[rows["running"].pk]))
    assert 'value="cancel_running_tasks"' in page.content.decode()  # the running task's page

    response = run_action(admin_client, "cancel_running_tasks", rows.values())

    assert messages_of(response) == ["Cancel: 2 done, 3 skipped (already finished)."]
    assert statuses(rows) == {
        "created": "cancelled",
        "running": "cancelled",
        "completed": "completed",
        "failed": "failed",
        "cancelled": "cancelled",
    }
    (attempt,) = TaskAttempt.objects.filter(task_id=rows["running"].pk)
    assert (attempt.outcome, attempt.worker_id, attempt.number) == ("cancelled", live.pk, 1)
    assert logged_ids() == {rows["created"].pk, rows["running"].pk}


def test_cancel_stopping_running_ones_needs_the_cancel_permission(
    staff_client: Callable[..., Client],
) -> None:
    row = make_task(TaskStatus.RUNNING)
    client = staff_client("view_task")

    run_action(client, "cancel_running_tasks", [row])

    assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.RUNNING
    page = client.get(reverse("admin:firefly_admin_task_change", args=[row.pk])).content.decode()
    assert "cancel_running_tasks" not in page


def test_requeue_skips_a_task_whose_unique_key_a_newer_task_holds_and_says_why(
    admin_client: Client,
) -> None:
    held = make_task(TaskStatus.FAILED, unique_key="invoice-42")
    free = make_task(TaskStatus.FAILED, unique_key="invoice-43")
    newer = tasks.add.using(unique_key="invoice-42").schedule(1, 2)

    response = run_action(admin_client, "requeue_tasks", [held, free])

    assert messages_of(response) == [
        "Requeue: 1 done, 1 skipped (not failed, cancelled or orphaned; 1 because an unfinished "
        "task holds their unique key)."
    ]
    assert TaskModel.objects.get(pk=held.pk).status == TaskStatus.FAILED
    assert TaskModel.objects.get(pk=free.pk).status == TaskStatus.CREATED
    assert TaskModel.objects.get(pk=free.pk).unique_hold == "invoice-43"
    assert TaskModel.objects.get(pk=newer.pk).unique_hold == "invoice-42"
    assert logged_ids() == {free.pk}


def test_run_now_makes_scheduled_tasks_ready_and_leaves_the_rest(admin_client: Client) -> None:
    later = timezone.now() + datetime.timedelta(hours=2)
    scheduled = make_task(not_before=later)
    retrying = make_task(not_before=later, retry_attempts=1, attempt=1)
    ready = make_task()
    done = make_task(TaskStatus.COMPLETED)

    response = run_action(admin_client, "run_now_tasks", [scheduled, retrying, ready, done])

    assert "Run now: 2 done, 2 skipped (not scheduled for later)." in response.content.decode()
    for row in (scheduled, retrying):
        row.refresh_from_db()
        assert row.status == TaskStatus.CREATED and row.not_before <= timezone.now()
    retrying.refresh_from_db()
    assert (retrying.retry_attempts, retrying.attempt) == (1, 1)  # nothing else changes
    assert TaskModel.objects.get(pk=done.pk).status == TaskStatus.COMPLETED
    assert LogEntry.objects.filter(change_message="Set to run now.").count() == 2


def test_run_now_needs_the_requeue_permission_and_shows_on_a_scheduled_tasks_page(
    staff_client: Callable[..., Client], admin_client: Client
) -> None:
    scheduled = make_task(not_before=timezone.now() + datetime.timedelta(hours=2))
    ready = make_task()
    viewer = staff_client("view_task", username="viewer")

    run_action(viewer, "run_now_tasks", [scheduled])
    assert TaskModel.objects.get(pk=scheduled.pk).not_before > timezone.now()

    def page(client: Client, row: TaskModel) -> str:
        url = reverse("admin:firefly_admin_task_change", args=[row.pk])
        return client.get(url).content.decode()

    assert 'value="run_now_tasks"' in page(admin_client, scheduled)
    assert 'value="run_now_tasks"' not in page(admin_client, ready)
    assert 'value="run_now_tasks"' not in page(viewer, scheduled)
