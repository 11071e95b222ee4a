"""Labels (``using(label=...)``, ``firefly_tasks.labels``) and django-q's task functions over
them (``firefly_tasks.compat.django_q``)."""

from __future__ import annotations

import pytest

from firefly_tasks import labels
from firefly_tasks.compat import django_q
from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.models import TaskModel
from firefly_tasks.testing import run_pending_tasks
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_labels_tasks_are_counted_listed_and_deleted_together() -> None:
    nightly = tasks.add.using(label="nightly")
    rows = nightly.schedule_many([(i, i) for i in range(4)])
    failed = tasks.always_fail.using(label="nightly", max_retries=0).schedule()
    other = tasks.add.using(label="other").schedule(9, 9)
    run_pending_tasks()

    assert labels.count("nightly") == 4
    assert labels.count("nightly", failures=True) == 1
    assert labels.results("nightly") == [0, 2, 4, 6]
    assert labels.results("nightly", failures=True)[:4] == [0, 2, 4, 6]
    assert "ValueError" in labels.results("nightly", failures=True)[4]
    assert [row.pk for row in labels.finished("nightly")] == [*(r.pk for r in rows), failed.pk]
    assert [row.pk for row in labels.finished("nightly", failures=False)] == [r.pk for r in rows]

    waiting = nightly.schedule(5, 5)  # unfinished: never deleted
    assert labels.delete("nightly") == 5
    assert list(labels.tasks("nightly")) == [waiting]
    assert TaskModel.objects.filter(pk=other.pk).exists()


def test_waiting_for_a_count_of_a_labels_tasks_returns_what_finished_meanwhile() -> None:
    tasks.add.using(label="batch").schedule_many([(1, 1), (2, 2)])
    assert labels.results("batch", wait=0.1) == []  # nothing ran: it waited and gave up
    run_pending_tasks(limit=1)
    assert labels.results("batch", wait=0.1, count=1) == [2]


def test_a_bad_label_fails_at_using() -> None:
    with pytest.raises(InvalidTaskError, match="label must be"):
        tasks.add.using(label="")
    with pytest.raises(InvalidTaskError, match="label must be"):
        tasks.add.using(label="x" * 101)


def test_django_q_async_task_result_and_groups() -> None:
    pk = django_q.async_task("tests.testapp.tasks.add", 2, 3, group="g")
    assert django_q.result(pk) is None  # not run yet, no wait
    assert django_q.fetch(pk) is None
    run_pending_tasks()
    assert django_q.result(pk) == 5
    assert django_q.result(str(pk), wait=10) == 5
    fetched = django_q.fetch(pk)
    assert fetched is not None and fetched.label == "g"
    assert django_q.result_group("g") == [5]
    assert django_q.count_group("g") == 1 and django_q.count_group("g", failures=True) == 0
    assert [row.pk for row in django_q.fetch_group("g") or []] == [pk]
    assert django_q.result_group("nothing") is None
    assert django_q.delete_group("g") == 1
    assert django_q.fetch(pk) is None


def test_django_q_hooks_name_registered_tasks_and_get_the_id() -> None:
    pk = django_q.async_task(tasks.add, 1, 1, hook="tests.testapp.tasks.note_outcome")
    run_pending_tasks()
    (hook,) = TaskModel.objects.filter(func_name="tests.testapp.tasks.note_outcome")
    assert hook.params["args"] == (pk,) and hook.status == "completed"


def test_django_q_async_task_refuses_what_is_not_a_registered_task() -> None:
    with pytest.raises(InvalidTaskError, match="not a registered task"):
        django_q.async_task("math.copysign", 2, -2)
    assert not TaskModel.objects.exists()
