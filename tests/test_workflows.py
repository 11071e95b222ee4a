"""Chains, groups with callbacks and ``depends_on``, run in this process as a consumer runs
them (``run_pending_tasks``): what each waiting task receives, and what a failure does to the
tasks after it. Real consumers: tests/test_workflow_consumers.py."""

from __future__ import annotations

import pytest

from firefly_tasks import chain, group
from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.models import TaskDependency, TaskModel, TaskStatus
from firefly_tasks.results import GroupResults, TaskFailure
from firefly_tasks.testing import run_pending_tasks
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def status(row: TaskModel) -> str:
    row.refresh_from_db()
    return row.status


def test_a_chain_passes_each_result_to_the_next_link() -> None:
    first, second, third = chain(tasks.add.s(1, 2), tasks.add.s(10), tasks.add.s(100)).schedule()
    assert [status(row) for row in (first, second, third)] == ["created", "blocked", "blocked"]
    assert (second.waiting_for, third.waiting_for) == (1, 1)

    run_pending_tasks()

    for row in (first, second, third):
        row.refresh_from_db()
    assert [row.returned for row in (first, second, third)] == [3, 13, 113]
    assert third.started >= second.completed >= first.completed


def test_an_immutable_link_receives_nothing() -> None:
    rows = chain(tasks.add.s(1, 2), tasks.add.si(5, 5)).schedule()
    run_pending_tasks()
    assert [TaskModel.objects.get(pk=row.pk).returned for row in rows] == [3, 10]


def test_a_failing_link_cancels_the_rest_with_the_reason_and_they_never_run() -> None:
    first, failing, second, third = chain(
        tasks.add.s(1, 2), tasks.always_fail.si(), tasks.add.s(1), tasks.add.s(1)
    ).schedule()

    run_pending_tasks()

    assert status(first) == TaskStatus.COMPLETED
    assert status(failing) == TaskStatus.FAILED
    for row in (second, third):
        assert status(row) == TaskStatus.CANCELLED
        assert row.error.startswith("DependencyFailed")
        assert row.attempt == 0  # never claimed
    assert f"#{failing.pk}" in second.error and f"#{second.pk}" in third.error


def test_a_group_callback_gets_every_result_in_order_once_all_finished() -> None:
    scheduled = group(tasks.add.s(i, i) for i in range(5)).then(tasks.describe.s()).schedule()
    members, callback = scheduled
    assert len(members) == 5 and status(callback) == TaskStatus.BLOCKED
    assert callback.waiting_for == 5

    run_pending_tasks()

    callback.refresh_from_db()
    assert callback.status == TaskStatus.COMPLETED
    assert callback.returned == ["0", "2", "4", "6", "8"]
    assert callback.waiting_for == 0


def test_a_failed_member_cancels_the_callback_unless_it_runs_if_failed() -> None:
    members = [tasks.add.s(1, 1), tasks.always_fail.si(), tasks.add.s(2, 2)]
    _, cancelled = group(members).then(tasks.total.s()).schedule()
    _, ran = group(members).then(tasks.describe.s(), run_if_failed=True).schedule()

    run_pending_tasks()

    assert status(cancelled) == TaskStatus.CANCELLED
    assert cancelled.error.startswith("DependencyFailed")
    ran.refresh_from_db()
    assert ran.status == TaskStatus.COMPLETED
    assert ran.returned == ["2", "failed", "4"]


def test_a_callback_past_the_payload_limit_reads_the_results_through_a_handle(
    settings: object,
) -> None:
    echoes = [tasks.echo.s("x" * 20) for _ in range(3)]  # results of 22 bytes each
    _, small = group(echoes).then(tasks.kind_of.s()).schedule()
    run_pending_tasks()
    _, large = group(echoes).then(tasks.kind_of.s()).schedule()
    run_pending_tasks(limit=3)
    assert status(large) == TaskStatus.CREATED
    settings.FIREFLY_MAX_PAYLOAD_BYTES = 60  # type: ignore[attr-defined]
    run_pending_tasks()
    assert TaskModel.objects.get(pk=small.pk).returned == ["list", 3]
    assert TaskModel.objects.get(pk=large.pk).returned == ["GroupResults", 3]
    handle = GroupResults(large.pk, "default")
    assert len(handle) == 3 and handle[-1] == "x" * 20 and list(handle) == ["x" * 20] * 3
    assert handle[0:2] == ["x" * 20] * 2


def test_depends_on_waits_for_scheduled_tasks_and_counts_finished_ones_at_once() -> None:
    done = tasks.add.schedule(1, 1)
    run_pending_tasks()
    waiting = tasks.add.schedule(2, 2)
    report = tasks.add.using(depends_on=[done, waiting.pk]).schedule(3, 3)
    assert status(report) == TaskStatus.BLOCKED
    assert report.waiting_for == 1  # the finished one counted already

    run_pending_tasks()

    assert status(report) == TaskStatus.COMPLETED
    assert TaskModel.objects.get(pk=report.pk).returned == 6


def test_depends_on_a_failed_task_is_cancelled_at_once() -> None:
    failed = tasks.always_fail.schedule()
    run_pending_tasks()
    report = tasks.add.using(depends_on=[failed]).schedule(1, 1)
    assert status(report) == TaskStatus.CANCELLED
    assert report.error.startswith("DependencyFailed")


def test_cancelling_a_link_cancels_the_links_after_it() -> None:
    first, second, third = chain(tasks.add.s(1, 1), tasks.add.s(1), tasks.add.s(1)).schedule()
    assert TaskModel.objects.filter(pk=first.pk).cancel() == 1
    assert [status(row) for row in (second, third)] == ["cancelled", "cancelled"]


def test_failure_objects_say_which_member_failed() -> None:
    (_, bad), callback = (
        group(tasks.add.s(1, 1), tasks.always_fail.si())
        .then(tasks.total.s(), run_if_failed=True)
        .schedule()
    )
    run_pending_tasks()
    handle = GroupResults(callback.pk, "default")
    assert handle[0] == 2
    assert isinstance(handle[1], TaskFailure) and handle[1].task_id == bad.pk
    assert handle[1].status == TaskStatus.FAILED and handle[1].error


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: chain(tasks.add.s(1, 2)), "at least two links"),
        (lambda: group([]), "at least one member"),
        (lambda: chain(tasks.add.s(1, 2), tasks.add), "signature of a registered task"),
        (lambda: tasks.add.using(depends_on=[0]), "depends_on takes scheduled tasks"),
        (lambda: tasks.add.using(depends_on="12"), "depends_on must be a list"),
        (lambda: tasks.unique_add.using(depends_on=[1]), "cannot be unique"),
        (lambda: chain(tasks.unique_add.s(1), tasks.add.s(1)).schedule(), "cannot be unique"),
        (lambda: group(tasks.unique_add.s(1)).schedule(), "cannot be unique"),
        (lambda: chain(tasks.add.s(1, 1), tasks.unique_add.s()).schedule(), "cannot be unique"),
    ],
)
def test_bad_workflows_fail_with_a_clear_error(build: object, message: str) -> None:
    with pytest.raises(InvalidTaskError, match=message):
        build()  # type: ignore[operator]


def test_nothing_is_stored_when_a_call_cannot_be_serialized() -> None:
    with pytest.raises(InvalidTaskError):
        group(tasks.add.s(1, 1), tasks.add.s(2, 2)).then(tasks.echo.s(object())).schedule()
    with pytest.raises(InvalidTaskError):
        chain(tasks.add.s(1, 1), tasks.echo.s(object())).schedule()
    assert not TaskModel.objects.exists()
    assert not TaskDependency.objects.exists()


def test_an_unknown_dependency_is_refused_and_nothing_stored() -> None:
    with pytest.raises(InvalidTaskError, match="do not exist"):
        tasks.add.using(depends_on=[987654]).schedule(1, 1)
    assert not TaskModel.objects.exists()


def test_a_requeued_member_is_waited_for_again() -> None:
    members, callback = (
        group(tasks.always_fail.si().using(max_retries=0), tasks.add.s(2, 2))
        .then(tasks.describe.s(), run_if_failed=True)
        .schedule()
    )
    run_pending_tasks(limit=1)  # the failing member, first by id
    callback.refresh_from_db()
    assert (members[0].status, callback.waiting_for) == ("created", 1)
    assert status(members[0]) == TaskStatus.FAILED

    assert TaskModel.objects.filter(pk=members[0].pk).requeue() == 1
    callback.refresh_from_db()
    assert (callback.status, callback.waiting_for) == (TaskStatus.BLOCKED, 2)

    run_pending_tasks()
    callback.refresh_from_db()
    assert callback.status == TaskStatus.COMPLETED and callback.attempt == 1
    assert callback.returned == ["failed", "4"]


def test_a_large_group_stores_every_edge_in_order() -> None:
    members, callback = (
        group(tasks.add.s(i, 0) for i in range(12_000)).then(tasks.total.s()).schedule()
    )
    edges = TaskDependency.objects.filter(child=callback).order_by("position")
    assert list(edges.values_list("parent_id", flat=True)) == [row.pk for row in members]
    assert callback.waiting_for == 12_000


def test_a_group_inside_a_chain_fans_out_then_in() -> None:
    _, *members, last = chain(
        tasks.add.s(1, 1),
        group(tasks.add.s(10), tasks.add.s(20), tasks.add.si(5, 5)),
        tasks.describe.s(),
    ).schedule()
    assert [status(row) for row in members] == ["blocked"] * 3
    assert last.waiting_for == 3

    run_pending_tasks()

    assert [TaskModel.objects.get(pk=row.pk).returned for row in members] == [12, 22, 10]
    assert TaskModel.objects.get(pk=last.pk).returned == ["12", "22", "10"]


def test_a_group_with_a_callback_inside_a_chain_passes_the_callbacks_result_on() -> None:
    rows = chain(
        group(tasks.add.s(1, 1), tasks.add.s(2, 2)).then(tasks.total.s()),
        tasks.add.s(100),
    ).schedule()
    run_pending_tasks()
    assert [TaskModel.objects.get(pk=row.pk).returned for row in rows] == [2, 4, 6, 106]


def test_a_failing_member_inside_a_chain_cancels_the_rest() -> None:
    *_, callback, last = chain(
        group(tasks.add.s(1, 1), tasks.always_fail.si().using(max_retries=0)).then(tasks.total.s()),
        tasks.add.s(100),
    ).schedule()
    run_pending_tasks()
    assert status(callback) == status(last) == TaskStatus.CANCELLED


def test_pruning_keeps_finished_tasks_a_blocked_task_waits_for() -> None:
    members, callback = (
        group(tasks.add.s(1, 1), tasks.add.s(2, 2)).then(tasks.describe.s()).schedule()
    )
    plain = tasks.add.using(priority=10).schedule(3, 3)
    run_pending_tasks(limit=2)  # the plain task, then the first member
    assert status(members[0]) == status(plain) == TaskStatus.COMPLETED
    assert status(callback) == TaskStatus.BLOCKED

    assert TaskModel.objects.filter(status=TaskStatus.COMPLETED).prune() == 1
    assert TaskModel.objects.filter(pk=members[0].pk).exists()  # the callback needs it
    assert not TaskModel.objects.filter(pk=plain.pk).exists()
    run_pending_tasks()
    assert TaskModel.objects.get(pk=callback.pk).returned == ["2", "4"]
