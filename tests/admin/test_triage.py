"""Failure triage: failures grouped by task and exception class, each group requeued as one;
the error column and filter of the task list; unregistered tasks flagged and never requeued."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from firefly_admin.triage import failure_groups, kind_of
from firefly_tasks.models import TaskModel, TaskStatus
from tests.admin.conftest import make_task
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("admin:firefly_admin_task_dashboard")
REQUEUE_GROUP = reverse("admin:firefly_admin_task_requeue_group")
CHANGELIST = reverse("admin:firefly_admin_task_changelist")
GHOST = "shop.tasks.removed_long_ago"


def failed(error: str, ago: float = 60, **fields: object) -> TaskModel:
    return make_task(
        TaskStatus.FAILED,
        error=error,
        failed=timezone.now() - datetime.timedelta(seconds=ago),
        **fields,
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("ValueError: boom", "ValueError"),
        ("shop.errors.PaymentDeclined: card refused", "shop.errors.PaymentDeclined"),
        ("TaskTimeout: ran past 5 s", "TaskTimeout"),
        ("no colon at all", "no colon at all"),
    ],
)
def test_the_database_reads_an_errors_class_as_python_does(error: str, kind: str) -> None:
    failed(error)
    (group,) = failure_groups(timezone.now())
    assert group.kind == kind_of(error) == kind


def test_failures_are_grouped_by_task_and_class_latest_first_within_a_day() -> None:
    first = failed("ValueError: one", ago=600)
    failed("ValueError: two", ago=300, queue="other")
    latest = failed("ValueError: three", ago=100)
    failed("KeyError: 'sku'", ago=50)
    failed("ValueError: yesterday", ago=2 * 86400)  # outside the window
    failed("RuntimeError: gone", ago=10, func_name=GHOST)

    groups = failure_groups(timezone.now())

    assert [(g.func_name, g.kind, g.count) for g in groups] == [
        (GHOST, "RuntimeError", 1),
        (tasks.add.name, "KeyError", 1),
        (tasks.add.name, "ValueError", 3),
    ]
    values = groups[2]
    assert values.first == TaskModel.objects.get(pk=first.pk).failed
    assert values.last == TaskModel.objects.get(pk=latest.pk).failed
    assert (values.latest_id, values.latest_error) == (latest.pk, "ValueError: three")
    assert [g.registered for g in groups] == [False, True, True]


def test_the_dashboard_shows_the_groups_with_a_requeue_button_for_registered_tasks(
    admin_client: Client,
) -> None:
    failed("ValueError: <script>alert(1)</script>")
    failed("RuntimeError: gone", func_name=GHOST)

    html = admin_client.get(DASHBOARD).content.decode()
    region = html.split('id="ff-failures"')[1].split("All failed tasks")[0]

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in region and "<script>alert" not in region
    assert region.count('name="task"') == 1  # no requeue for the unregistered task
    assert "not registered" in region
    assert "error_kind=ValueError" in region


def test_requeue_group_requeues_that_group_up_to_the_task_shown(admin_client: Client) -> None:
    shown = [failed("ValueError: a", ago=200), failed("ValueError: b", ago=100)]
    other_kind = failed("KeyError: c", ago=150)
    newer = failed("ValueError: d", ago=10)  # failed after the page was shown

    response = admin_client.post(
        REQUEUE_GROUP,
        {"task": tasks.add.name, "kind": "ValueError", "up_to_id": str(shown[-1].pk)},
        follow=True,
    )

    assert response.redirect_chain == [(DASHBOARD, 302)]
    assert "Requeue: 2 done, 0 skipped" in response.content.decode()
    status = dict(TaskModel.objects.values_list("pk", "status"))
    assert [status[row.pk] for row in shown] == [TaskStatus.CREATED, TaskStatus.CREATED]
    assert status[other_kind.pk] == status[newer.pk] == TaskStatus.FAILED
    assert LogEntry.objects.count() == 2


def test_requeue_group_needs_post_csrf_and_the_requeue_permission(
    staff_client: Callable[..., Client],
    django_user_model: type[User],
) -> None:
    row = failed("ValueError: a")
    data = {"task": tasks.add.name, "kind": "ValueError", "up_to_id": str(row.pk)}

    viewer = staff_client("view_task", username="viewer")
    assert viewer.get(REQUEUE_GROUP).status_code == 405
    assert viewer.post(REQUEUE_GROUP, data).status_code == 403
    requeuer = staff_client("view_task", "requeue_task", username="requeuer")
    csrf_checked = Client(enforce_csrf_checks=True)
    csrf_checked.force_login(django_user_model.objects.get(username="requeuer"))
    assert csrf_checked.post(REQUEUE_GROUP, data).status_code == 403
    assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.FAILED

    assert requeuer.post(REQUEUE_GROUP, data).status_code == 302
    assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.CREATED


def test_an_unregistered_group_is_never_requeued(admin_client: Client) -> None:
    row = failed("RuntimeError: gone", func_name=GHOST)

    response = admin_client.post(
        REQUEUE_GROUP,
        {"task": GHOST, "kind": "RuntimeError", "up_to_id": str(row.pk)},
        follow=True,
    )

    assert "is not a registered task here" in response.content.decode()
    assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.FAILED


def test_the_requeue_action_skips_unregistered_tasks_and_says_why(admin_client: Client) -> None:
    ghost = failed("RuntimeError: gone", func_name=GHOST)
    known = failed("ValueError: a")

    response = admin_client.post(
        CHANGELIST,
        {"action": "requeue_tasks", "_selected_action": [ghost.pk, known.pk]},
        follow=True,
    )

    assert "1 because no registered task answers to their name here" in response.content.decode()
    assert TaskModel.objects.get(pk=ghost.pk).status == TaskStatus.FAILED
    assert TaskModel.objects.get(pk=known.pk).status == TaskStatus.CREATED


def test_the_list_shows_errors_of_failed_tasks_and_filters_by_class(admin_client: Client) -> None:
    value = failed("ValueError: first line\nsecond line")
    key = failed("KeyError: 'x'")
    ghost = failed("RuntimeError: gone", func_name=GHOST)

    page = admin_client.get(CHANGELIST, {"status": "failed"}).content.decode()
    assert "column-error_summary" in page and "ValueError: first line" in page
    assert "second line" not in page
    assert page.count("not registered") == 1
    assert "column-error_summary" not in admin_client.get(CHANGELIST).content.decode()

    filtered = admin_client.get(CHANGELIST, {"status": "failed", "error_kind": "KeyError"})
    html = filtered.content.decode()
    change = reverse("admin:firefly_admin_task_change", args=[key.pk])
    assert change in html
    for other in (value, ghost):
        assert reverse("admin:firefly_admin_task_change", args=[other.pk]) not in html


def test_the_task_page_offers_no_requeue_for_an_unregistered_task(admin_client: Client) -> None:
    ghost = failed("RuntimeError: gone", func_name=GHOST)
    known = failed("ValueError: a")

    def page(row: TaskModel) -> str:
        url = reverse("admin:firefly_admin_task_change", args=[row.pk])
        return admin_client.get(url).content.decode()

    assert 'value="requeue_tasks"' not in page(ghost)
    assert 'value="requeue_tasks"' in page(known)


def test_a_django_tasks_frameworks_failures_are_their_own_group_and_requeued(
    admin_client: Client,
) -> None:
    # A DEP 14 row names the framework's task and its TASKS alias: the framework resolves it.
    dep14 = failed("ValueError: a", func_name="shop.jobs.framework_task", backend="default")
    failed("ValueError: b")

    groups = failure_groups(timezone.now())
    (framework,) = [g for g in groups if g.backend == "default"]
    assert (framework.func_name, framework.count, framework.registered) == (
        "shop.jobs.framework_task",
        1,
        True,
    )

    data = {
        "task": "shop.jobs.framework_task",
        "backend": "default",
        "kind": "ValueError",
        "up_to_id": str(dep14.pk),
    }
    admin_client.post(REQUEUE_GROUP, data)

    assert TaskModel.objects.get(pk=dep14.pk).status == TaskStatus.CREATED
    assert TaskModel.objects.filter(status=TaskStatus.FAILED).count() == 1
