"""The task and worker pages of the admin: lists, filters, details, read-only rows."""

from __future__ import annotations

import datetime
import pickle
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, Settings

from firefly_admin import counting
from firefly_tasks.exceptions import SerializationError
from firefly_tasks.models import TaskModel, TaskStatus, WorkerModel, WorkerState
from firefly_tasks.queues import pause_queue
from tests.admin import tasks as admin_tasks
from tests.admin.conftest import make_attempt, make_task, make_worker
from tests.testapp import tasks

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

CHANGELIST = reverse("admin:firefly_admin_task_changelist")
WORKERS = reverse("admin:firefly_admin_worker_changelist")


def change_url(task: TaskModel) -> str:
    return reverse("admin:firefly_admin_task_change", args=[task.pk])


def listed_ids(response: TestResponse) -> set[int]:
    return {row.pk for row in response.context["cl"].result_list}


# The list ------------------------------------------------------------------------------------


def test_changelist_shows_every_column_with_a_status_badge(admin_client: Client) -> None:
    task = make_task(TaskStatus.FAILED, priority=7)

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    for header in ("Id", "Task", "Queue", "Status", "Priority", "Attempts", "Created"):
        assert f">{header}<" in html or f">{header}</a>" in html
    for header in ("Not before", "Started", "Finished", "Duration"):
        assert header in html
    assert '<span class="ff-badge ff-badge-failed">failed</span>' in html
    assert change_url(task) in html


def test_the_list_shows_when_the_latest_attempt_started_and_how_long_it_ran(
    admin_client: Client,
) -> None:
    claimed = timezone.now() - datetime.timedelta(minutes=5)
    started = claimed + datetime.timedelta(seconds=40)  # it waited in its batch
    task = make_task(TaskStatus.COMPLETED, started=claimed, attempt=2)
    make_attempt(task, 1, started=claimed - datetime.timedelta(hours=1), finished=claimed)
    finished = started + datetime.timedelta(milliseconds=250)
    make_attempt(task, 2, started=started, finished=finished, outcome="completed")

    response = admin_client.get(CHANGELIST)

    (row,) = response.context["cl"].result_list
    assert (row.attempt_started, row.attempt_finished) == (started, finished)
    html = response.content.decode()
    assert "250 ms" in html
    assert f'datetime="{started.isoformat()}"' in html
    assert f'datetime="{claimed.isoformat()}"' not in html  # the claim is not its start
    page = admin_client.get(change_url(task)).content.decode()
    assert "250 ms" in page  # the task's page times the attempt too
    assert f'datetime="{claimed.isoformat()}"' in page  # and says when it was claimed


def test_the_list_tells_executing_tasks_from_claimed_ones(admin_client: Client) -> None:
    now = timezone.now()
    worker = make_worker("busy")
    executing = make_task(TaskStatus.RUNNING, worker=worker, timeout=30)
    claimed = make_task(TaskStatus.RUNNING, worker=worker)
    started = now - datetime.timedelta(seconds=12)
    snapshot = [
        {"id": executing.pk, "name": "n", "queue": "default", "started": started.isoformat()}
    ]
    WorkerModel.objects.filter(pk=worker.pk).update(executing=snapshot)

    html = admin_client.get(CHANGELIST).content.decode()

    shown = (executing.pk, claimed.pk)
    rows = {pk: html.partition(f"/{pk}/change/")[2].split("</tr>")[0] for pk in shown}
    assert "ff-badge-executing" in rows[executing.pk]
    assert f'datetime="{started.isoformat()}"' in rows[executing.pk]
    assert re.search(
        r">1[23]\.\d s of 30\.0 s<", rows[executing.pk]
    )  # elapsed, against its timeout
    assert "ff-badge-claimed" in rows[claimed.pk]
    dashboard = admin_client.get(reverse("admin:firefly_admin_task_dashboard"))
    assert dashboard.content.decode().count("ff-badge-executing") == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=failed", {"failed"}),
        ("status=created", {"created", "report"}),
        ("queue=reports", {"report"}),
        (f"task={tasks.add.name}", {"created", "failed", "old"}),
        (f"task={admin_tasks.build_report.name}", {"report"}),
        ("created_after=2020-01-01&created_before=2020-01-31", {"old"}),
        ("created_after=2020-02-01", {"created", "failed", "report"}),
    ],
)
def test_changelist_filters_by_status_queue_task_and_date_range(
    admin_client: Client, query: str, expected: set[str]
) -> None:
    rows = {
        "created": make_task(TaskStatus.CREATED),
        "failed": make_task(TaskStatus.FAILED),
        "report": admin_tasks.build_report.schedule("q1"),
        "old": make_task(
            TaskStatus.COMPLETED, created=datetime.datetime(2020, 1, 15, tzinfo=datetime.UTC)
        ),
    }

    response = admin_client.get(f"{CHANGELIST}?{query}")

    assert response.status_code == 200
    assert listed_ids(response) == {rows[name].pk for name in expected}


def test_filter_choices_come_from_the_registry_and_known_queues_never_the_table(
    admin_client: Client,
) -> None:
    make_task(TaskStatus.CREATED, queue="legacy-queue", func_name="gone.module.task")
    pause_queue("paused-queue")

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)

    # The filter sidebar alone (a <nav> on Django 5.2, a <search> on 6.x).
    html = re.split(
        r"</(?:nav|search)>", response.content.decode().split('id="changelist-filter"')[1]
    )[0]
    assert "?queue=paused-queue" in html  # a queue control row
    assert "?queue=reports" in html  # named by a registered task
    assert "?queue=legacy-queue" not in html  # only in the task table
    assert f"?task={tasks.add.name}" in html
    assert "gone.module.task" not in html
    assert not [q for q in queries.captured_queries if "DISTINCT" in q["sql"].upper()]


def test_a_bad_date_in_the_range_filter_is_refused(admin_client: Client) -> None:
    response = admin_client.get(f"{CHANGELIST}?created_after=yesterday")
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_date_range_form_keeps_the_other_filters(admin_client: Client) -> None:
    response = admin_client.get(f"{CHANGELIST}?status=failed&q=add")
    html = response.content.decode()
    assert '<input type="hidden" name="status" value="failed">' in html
    assert '<input type="hidden" name="q" value="add">' in html


def test_every_filter_title_is_spaced_from_the_admins_arrow(admin_client: Client) -> None:
    html = admin_client.get(CHANGELIST).content.decode()

    titles = re.findall(r"<summary>(.*?)</summary>", html, re.DOTALL)
    assert "By created" in " ".join(titles)
    # The admin draws its arrow before the title (::before): "↓ By created", not "↓By created".
    assert [title for title in titles if not title[:1].isspace()] == []


def test_search_finds_a_task_by_id_or_by_part_of_its_name(admin_client: Client) -> None:
    first = make_task()
    report = admin_tasks.build_report.schedule("x")

    assert listed_ids(admin_client.get(f"{CHANGELIST}?q={first.pk}")) == {first.pk}
    assert listed_ids(admin_client.get(f"{CHANGELIST}?q=%23{report.pk}")) == {report.pk}
    assert listed_ids(admin_client.get(f"{CHANGELIST}?q=build_rep")) == {report.pk}
    assert listed_ids(admin_client.get(f"{CHANGELIST}?q=99999999999999999999999")) == set()


@pytest.mark.parametrize("term", ["9" * 5000, "²"])
def test_a_search_of_digits_that_are_no_task_id_finds_nothing(
    admin_client: Client, term: str
) -> None:
    make_task()

    response = admin_client.get(CHANGELIST, {"q": term})

    assert response.status_code == 200
    assert listed_ids(response) == set()


def test_counts_stop_at_a_limit_and_say_so(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(counting, "COUNT_LIMIT", 5)
    tasks.add.schedule_many([(i, i) for i in range(8)])

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)

    assert response.context["cl"].result_count == 5
    assert "Counting stops at 5 to keep this page fast" in response.content.decode()
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts)


def test_changelist_runs_few_queries(
    operator_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    tasks.add.schedule_many([(i, i) for i in range(120)])
    make_task(TaskStatus.FAILED)

    with django_assert_max_num_queries(10):
        response = operator_client.get(f"{CHANGELIST}?status=created&queue=default")

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 50


def test_the_full_dashboard_runs_ten_queries_with_workers_failures_and_tasks(
    admin_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    """The six regions of the full page share the queue catalog and the workers: with the
    session and the user, ten queries, however many workers (under the list's 50), queues,
    failures and tasks: each failure group's latest error is read with the groups."""
    now = timezone.now()
    for index in range(30):
        worker = make_worker(f"w{index}", last_heartbeat=now)
        row = make_task(TaskStatus.RUNNING, worker=worker)
        started = now.isoformat()
        executing = [{"id": row.pk, "name": row.func_name, "queue": "default", "started": started}]
        WorkerModel.objects.filter(pk=worker.pk).update(executing=executing)
    for error in ("ValueError: one", "KeyError: two", "ValueError: three"):
        make_task(TaskStatus.FAILED, error=error)
    tasks.add.schedule_many([(i, i) for i in range(40)])  # the newest: the list shows these

    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse("admin:firefly_admin_task_dashboard"))

    assert response.status_code == 200
    queues = response.context["queue_stats"]
    default = next(queue for queue in queues if queue.name == "default")
    assert (default.running, default.executing) == (30, 30)
    assert sorted(status.holding for status in response.context["workers"]) == [1] * 30
    groups = {(group.kind, group.latest_error) for group in response.context["failure_groups"]}
    assert groups == {("ValueError", "ValueError: three"), ("KeyError", "KeyError: two")}


def test_changelist_never_loads_the_payloads(admin_client: Client) -> None:
    tasks.echo.schedule("x" * 10_000)

    with CaptureQueriesContext(connection) as queries:
        admin_client.get(CHANGELIST)

    selects = [q["sql"] for q in queries.captured_queries if "firefly_tasks_taskmodel" in q["sql"]]
    assert selects
    assert not [sql for sql in selects if '"params"' in sql or "`params`" in sql]


# Read-only rows ------------------------------------------------------------------------------


def test_nobody_adds_or_edits_a_task_by_hand(admin_client: Client) -> None:
    task = make_task(TaskStatus.FAILED)

    assert admin_client.get(reverse("admin:firefly_admin_task_add")).status_code == 403
    response = admin_client.post(change_url(task), {"func_name": "os.system", "queue": "x"})

    assert response.status_code == 403
    task.refresh_from_db()
    assert task.func_name == tasks.add.name
    page = admin_client.get(change_url(task)).content.decode()
    assert 'name="_save"' not in page
    assert 'name="func_name"' not in page


# The detail ----------------------------------------------------------------------------------


@pytest.mark.parametrize("hidden", [["password", "token"]])
def test_detail_shows_json_arguments_and_result_with_hidden_args_masked(
    admin_client: Client, settings: Settings, hidden: list[str]
) -> None:
    settings.FIREFLY_ADMIN_HIDDEN_ARGS = hidden
    task = admin_tasks.sign_in.schedule("ada", "hunter2", token="t0k3n")
    TaskModel.objects.filter(pk=task.pk).update(
        status=TaskStatus.COMPLETED,
        completed=timezone.now(),
        returned_data='{"username":"ada","token":"t0k3n"}',
        returned_preview="{'username': 'ada', 'token': 't0k3n'}",
    )

    html = admin_client.get(change_url(task)).content.decode()

    assert "&quot;ada&quot;" in html
    assert "hunter2" not in html
    assert "t0k3n" not in html
    assert "********" in html


def test_pickle_rows_show_the_stored_preview_and_are_never_unpickled(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = make_task(
        TaskStatus.COMPLETED,
        serializer="pickle",
        params_preview="1, 2",
        returned_preview="3",
    )
    TaskModel.objects.filter(pk=task.pk).update(
        params_data="gARLAUsChpR9lIaULg==", returned_data="gARLAy4="
    )

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the admin unpickled a payload")

    monkeypatch.setattr(pickle, "loads", refuse)
    response = admin_client.get(change_url(task))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<pre class="ff-pre">1, 2</pre>' in html
    assert '<pre class="ff-pre">3</pre>' in html


def test_detail_lists_every_attempt_and_a_timeline(admin_client: Client) -> None:
    worker = make_worker()
    task = make_task(TaskStatus.FAILED, worker=worker, attempt=2)
    make_attempt(
        task,
        1,
        worker=worker,
        worker_name=worker.name,
        error="KeyError: 'a'",
        started=task.created + datetime.timedelta(seconds=1),
        finished=task.created + datetime.timedelta(seconds=2),
    )
    make_attempt(
        task,
        2,
        worker_name="gone:1:x",
        outcome="lost",
        error="",
        started=task.created + datetime.timedelta(seconds=3),
        finished=task.created + datetime.timedelta(seconds=4),
    )
    TaskModel.objects.filter(pk=task.pk).update(failed=task.created + datetime.timedelta(seconds=5))

    html = admin_client.get(change_url(task)).content.decode()

    attempts = html.split('id="ff-attempts"')[1].split("</fieldset>")[0]
    assert attempts.count("<tr>") == 3  # header and two attempts
    assert "KeyError: &#x27;a&#x27;" in attempts
    assert reverse("admin:firefly_admin_worker_change", args=[worker.pk]) in attempts
    assert "gone:1:x" in attempts
    assert "Traceback" in attempts
    timeline = html.split('id="ff-timeline"')[1].split("</fieldset>")[0]
    labels = ["Scheduled on queue", "Attempt 1 started", "Attempt 1 failed", "Attempt 2 lost"]
    positions = [timeline.index(label) for label in labels]
    assert positions == sorted(positions)
    assert "Task failed" in timeline


def test_html_in_params_results_errors_and_tracebacks_is_escaped(admin_client: Client) -> None:
    evil = "<script>alert(1)</script>"
    task = tasks.echo.schedule(evil)
    TaskModel.objects.filter(pk=task.pk).update(
        status=TaskStatus.FAILED,
        failed=timezone.now(),
        error=f"ValueError: {evil}",
        traceback=f"Traceback\n  {evil}\n",
        returned_data=f'"{evil}"',
    )
    make_attempt(task, error=evil, traceback=evil)

    for url in (change_url(task), CHANGELIST, reverse("admin:firefly_admin_task_dashboard")):
        html = admin_client.get(url).content.decode()
        assert evil not in html, url
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;"
        in admin_client.get(change_url(task)).content.decode()
    )


def test_html_in_a_result_is_escaped(admin_client: Client) -> None:
    evil = "<img src=x onerror=alert(1)>"
    task = tasks.echo.schedule(evil)
    TaskModel.objects.filter(pk=task.pk).update(
        status=TaskStatus.COMPLETED,
        started=timezone.now(),
        completed=timezone.now(),
        attempt=1,
        returned_data=f'"{evil}"',
        returned_preview=repr(evil),
    )

    html = admin_client.get(change_url(task)).content.decode()

    assert evil not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def deepest_call_schedule_accepts() -> TaskModel:
    """A task whose argument is nested as deep as ``schedule()`` lets it be, from here."""
    for depth in range(sys.getrecursionlimit(), 0, -5):
        try:
            return tasks.echo.schedule(nested(depth))
        except (RecursionError, SerializationError):
            continue
    raise AssertionError("schedule() refused every depth")


def written_straight_to_the_table(**fields: object) -> Callable[[], TaskModel]:
    return lambda: TaskModel.objects.create(func_name=tasks.echo.name, queue="default", **fields)


HUGE = "x" * 1_100_000  # past what is decoded, within MySQL's default max_allowed_packet
ROWS = {
    "a lone surrogate in the arguments": (lambda: tasks.echo.schedule("\ud800"), "\\ud800"),
    "arguments as deep as schedule() accepts": (deepest_call_schedule_accepts, ""),
    "arguments nested 10,000 deep": (
        written_straight_to_the_table(params_data="[" * 10_000 + "]" * 10_000),
        "undecodable: nested too deeply to show",
    ),
    "a tuple tag over a number": (
        written_straight_to_the_table(
            params_data="[[], {}]", returned_data='{"__firefly__": "tuple", "v": 5}'
        ),
        "undecodable: TypeError",
    ),
    "invalid JSON": (
        written_straight_to_the_table(params_data="{oops", returned_data="[1,"),
        "undecodable: JSONDecodeError",
    ),
    "pickle junk": (
        written_straight_to_the_table(
            serializer="pickle", params_data="junk", returned_data="!!", params_preview="1, 2"
        ),
        "1, 2",
    ),
    "an unknown serializer, in HTML": (
        written_straight_to_the_table(serializer="<b>x</b>", params_data="a", returned_data="b"),
        "undecodable: unknown serializer &#x27;&lt;b&gt;x&lt;/b&gt;&#x27;",
    ),
    "huge text everywhere": (
        written_straight_to_the_table(
            params_data=f'[["{HUGE}"], {{}}]',
            returned_data=f'"{HUGE}"',
            params_preview=HUGE,
            returned_preview=HUGE,
            error=HUGE,
            traceback=HUGE,
        ),
        "undecodable: 1,100,010 characters, too long to decode here",
    ),
}


@pytest.mark.parametrize(("make", "shown"), ROWS.values(), ids=ROWS)
def test_every_page_renders_whatever_a_row_holds(
    admin_client: Client, make: Callable[[], TaskModel], shown: str
) -> None:
    """Each row in each state, on every page that shows tasks: never a 500."""
    worker = make_worker()
    rows = [make() for _ in TaskStatus]
    now = timezone.now()
    for row, status in zip(rows, TaskStatus, strict=True):
        TaskModel.objects.filter(pk=row.pk).update(
            status=status, started=now, completed=now, failed=now, attempt=1, worker=worker
        )
        make_attempt(row, error=HUGE, traceback=HUGE, worker=worker)
    selected = {"_selected_action": [row.pk for row in rows], "index": 0}
    dashboard = reverse("admin:firefly_admin_task_dashboard")

    responses = {
        "changelist": admin_client.get(CHANGELIST),
        "dashboard": admin_client.get(dashboard),
        "delete": admin_client.post(CHANGELIST, {**selected, "action": "delete_tasks"}),
        "rename": admin_client.post(CHANGELIST, {**selected, "action": "rename_tasks"}),
    }
    for region in ("ff-queues", "ff-workers", "ff-failures", "ff-tasks"):
        headers = {"HX-Request": "true", "HX-Target": region}
        responses[region] = admin_client.get(dashboard, headers=headers)
    for row, status in zip(rows, TaskStatus, strict=True):
        responses[f"page of {status}"] = admin_client.get(change_url(row))
        history = reverse("admin:firefly_admin_task_history", args=[row.pk])
        responses[f"history of {status}"] = admin_client.get(history)

    assert {name: response.status_code for name, response in responses.items()} == {
        name: 200 for name in responses
    }
    completed = responses[f"page of {TaskStatus.COMPLETED}"].content.decode()
    assert shown in completed


def test_delete_page_summarises_attempts_instead_of_listing_them(admin_client: Client) -> None:
    task = make_task(TaskStatus.FAILED)
    for number in range(1, 31):
        make_attempt(task, number)

    html = admin_client.get(
        reverse("admin:firefly_admin_task_delete", args=[task.pk])
    ).content.decode()

    assert "and its 30 attempts" in html
    assert "attempt 1:" not in html and "task attempt" not in html.lower().replace(
        "task attempts", ""
    )


def test_running_task_cannot_be_deleted_from_its_page(admin_client: Client) -> None:
    task = make_task(TaskStatus.RUNNING)
    url = reverse("admin:firefly_admin_task_delete", args=[task.pk])

    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert TaskModel.objects.filter(pk=task.pk).exists()


def test_delete_from_the_task_page_removes_it_with_its_attempts(admin_client: Client) -> None:
    task = make_task(TaskStatus.FAILED)
    make_attempt(task)

    response = admin_client.post(
        reverse("admin:firefly_admin_task_delete", args=[task.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not TaskModel.objects.filter(pk=task.pk).exists()


# Workers -------------------------------------------------------------------------------------


def test_workers_list_shows_liveness_and_links_to_the_tasks_each_ran(
    admin_client: Client, settings: Settings
) -> None:
    settings.FIREFLY_HEARTBEAT_INTERVAL = 5
    settings.FIREFLY_WORKER_TIMEOUT = 30
    now = timezone.now()
    alive = make_worker("w-alive", last_heartbeat=now)
    late = make_worker("w-late", last_heartbeat=now - datetime.timedelta(seconds=15))
    dead = make_worker("w-dead", last_heartbeat=now - datetime.timedelta(seconds=60))
    stopped = make_worker("w-stopped", state=WorkerState.STOPPED)

    html = admin_client.get(WORKERS).content.decode()

    for worker, liveness in (
        (alive, "alive"),
        (late, "late"),
        (dead, "dead"),
        (stopped, "stopped"),
    ):
        row = html.split(f">{worker.name}<")[1].split("</tr>")[0]
        assert f"ff-badge-{liveness}" in row
        assert f"{CHANGELIST}?worker={worker.pk}" in row


def test_the_worker_list_shows_liveness_alone_and_the_worker_page_its_state_too(
    admin_client: Client,
) -> None:
    running = make_worker("w-running", last_heartbeat=timezone.now())
    make_worker("w-leaving", last_heartbeat=timezone.now(), state=WorkerState.STOPPING)

    html = admin_client.get(WORKERS).content.decode()
    page = admin_client.get(reverse("admin:firefly_admin_worker_change", args=[running.pk]))

    assert "column-liveness_badge" in html and "column-state" not in html
    assert "ff-badge-stopping" in html.split(">w-leaving<")[1].split("</tr>")[0]
    assert "field-state" in page.content.decode()


def test_tasks_filtered_by_worker_are_those_it_ran_or_runs(admin_client: Client) -> None:
    worker, other = make_worker("w1"), make_worker("w2")
    ran_twice = make_task(TaskStatus.COMPLETED)
    make_attempt(ran_twice, 1, worker=worker, outcome="failed")
    make_attempt(ran_twice, 2, worker=worker, outcome="completed")
    running = make_task(TaskStatus.RUNNING, worker=worker)
    elsewhere = make_task(TaskStatus.COMPLETED)
    make_attempt(elsewhere, worker=other, outcome="completed")

    response = admin_client.get(f"{CHANGELIST}?worker={worker.pk}")

    assert listed_ids(response) == {ran_twice.pk, running.pk}
    assert len(response.context["cl"].result_list) == 2  # no duplicate rows
    assert "w1" in response.content.decode()


def test_workers_are_read_only(admin_client: Client) -> None:
    worker = make_worker()

    assert admin_client.get(reverse("admin:firefly_admin_worker_add")).status_code == 403
    assert (
        admin_client.post(
            reverse("admin:firefly_admin_worker_change", args=[worker.pk]), {"name": "x"}
        ).status_code
        == 403
    )
    assert (
        admin_client.get(reverse("admin:firefly_admin_worker_delete", args=[worker.pk])).status_code
        == 403
    )


# What view-only staff see --------------------------------------------------------------------


def test_view_only_staff_see_no_mutation_controls(staff_client: Callable[..., Client]) -> None:
    client = staff_client("view_task", "view_worker")
    failed = make_task(TaskStatus.FAILED)

    changelist = client.get(CHANGELIST)
    detail = client.get(change_url(failed)).content.decode()
    dashboard = client.get(reverse("admin:firefly_admin_task_dashboard")).content.decode()

    assert changelist.status_code == 200
    assert changelist.context["action_form"] is None
    assert 'name="_selected_action"' not in changelist.content.decode()
    for control in ("requeue_tasks", "cancel_tasks", "rename_tasks", ">Delete<"):
        assert control not in detail
    assert "ff-controls-title" not in dashboard
    assert 'name="queue"' not in dashboard.split('id="ff-tasks-title"')[0]


def test_staff_without_view_permission_are_refused(staff_client: Callable[..., Client]) -> None:
    client = staff_client()
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(reverse("admin:firefly_admin_task_dashboard")).status_code == 403


def test_permissions_are_defined_on_firefly_admin(db: None) -> None:
    codenames = set(
        Permission.objects.filter(content_type__app_label="firefly_admin").values_list(
            "codename", flat=True
        )
    )
    assert {"requeue_task", "cancel_task", "rename_task", "delete_task", "pause_queue"} <= codenames
    assert "add_queue" not in codenames


def test_task_page_runs_few_queries_however_many_attempts(
    operator_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    task = make_task(TaskStatus.FAILED, worker=make_worker("w"))
    for number in range(1, 21):
        make_attempt(task, number)

    # Ten, and three for the workflow section (progress, and the edges each way).
    with django_assert_max_num_queries(13):
        response = operator_client.get(change_url(task))

    assert response.status_code == 200


def test_worker_list_runs_few_queries_however_many_workers(
    operator_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    for index in range(30):
        make_task(TaskStatus.RUNNING, worker=make_worker(f"w{index}"))

    with django_assert_max_num_queries(10):
        response = operator_client.get(WORKERS)

    assert response.status_code == 200
    assert response.content.decode().count("w29") >= 1


def test_detail_shows_the_unique_key_escaped(admin_client: Client) -> None:
    task = tasks.add.using(unique_key="<b>invoice</b>-42").schedule(1, 2)

    html = admin_client.get(change_url(task)).content.decode()

    assert "Flow control" in html
    assert "&lt;b&gt;invoice&lt;/b&gt;-42" in html
    assert "<b>invoice</b>" not in html


def test_task_page_shows_its_workflow_with_each_members_status_and_link(
    operator_client: Client,
) -> None:
    from firefly_tasks import group
    from firefly_tasks.models import TaskProgress
    from tests.testapp import tasks

    members, callback = group(tasks.add.s(i, i) for i in range(25)).then(tasks.total.s()).schedule()
    TaskModel.objects.filter(pk=members[0].pk).update(status=TaskStatus.COMPLETED)
    TaskProgress.objects.create(
        task_id=members[1].pk, done=7, total=10, message="<b>rows</b>", updated=timezone.now()
    )

    page = operator_client.get(change_url(callback)).content.decode()
    assert "1 of 25 done" in page
    assert "waiting for 25" in page  # the count as stored: nothing decremented it here
    assert change_url(members[0]) in page and change_url(members[19]) in page
    assert change_url(members[20]) not in page and "and 5 more" in page

    member_page = operator_client.get(change_url(members[1])).content.decode()
    assert change_url(callback) in member_page
    assert 'value="7" max="10"' in member_page and "7 of 10: &lt;b&gt;rows&lt;/b&gt;" in member_page


def test_blocked_tasks_are_filtered_and_shown_with_why_they_wait(operator_client: Client) -> None:
    from firefly_tasks import chain
    from tests.testapp import tasks

    _, waiting = chain(tasks.add.s(1, 1), tasks.add.s(1)).schedule()
    parked = tasks.add.using(concurrency_limit=1).schedule(2, 2)
    TaskModel.objects.filter(pk=parked.pk).update(status=TaskStatus.BLOCKED)
    changelist = reverse("admin:firefly_admin_task_changelist")

    for_tasks = operator_client.get(changelist, {"blocked": "tasks"}).content.decode()
    assert change_url(waiting) in for_tasks and change_url(parked) not in for_tasks
    assert "blocked: waiting for 1" in for_tasks
    for_slot = operator_client.get(changelist, {"blocked": "slot"}).content.decode()
    assert change_url(parked) in for_slot and change_url(waiting) not in for_slot
    assert "blocked: waiting for a slot" in for_slot
