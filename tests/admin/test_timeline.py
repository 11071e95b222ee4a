"""A task's timeline: its events in time order, and events of the same moment in the order
one led to the next."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from firefly_admin.timeline import task_timeline
from firefly_tasks.models import TaskModel, TaskStatus
from tests.admin.conftest import make_attempt, make_task

pytestmark = pytest.mark.django_db

T = timezone.now().replace(microsecond=0)


def labels(task: TaskModel) -> list[str]:
    task.refresh_from_db()
    return [event.label for event in task_timeline(task, list(task.attempts.order_by("number")))]


def test_a_lost_attempt_comes_before_the_retry_it_made_the_task_due_for() -> None:
    # A consumer's maintenance recovers the attempt and requeues the task in one moment.
    task = make_task(TaskStatus.CREATED, attempt=1, not_before=T)
    TaskModel.objects.filter(pk=task.pk).update(created=T - datetime.timedelta(minutes=5))
    make_attempt(task, 1, outcome="lost", started=T - datetime.timedelta(minutes=1), finished=T)

    assert labels(task) == [
        f"Scheduled on queue {task.queue}",
        "Attempt 1 started on no worker",
        "Attempt 1 lost",
        "Due to run (not before)",
    ]


def test_a_task_is_due_before_the_attempt_that_starts_at_that_moment() -> None:
    finished = T + datetime.timedelta(seconds=3)
    task = make_task(TaskStatus.FAILED, attempt=1, not_before=T, failed=finished)
    TaskModel.objects.filter(pk=task.pk).update(created=T - datetime.timedelta(minutes=5))
    make_attempt(task, 1, started=T, finished=finished)

    assert labels(task) == [
        f"Scheduled on queue {task.queue}",
        "Due to run (not before)",
        "Attempt 1 started on no worker",
        "Attempt 1 failed",
        "Task failed",
    ]


def test_an_attempt_that_starts_and_ends_at_once_still_starts_after_the_task_is_due() -> None:
    task = make_task(TaskStatus.CREATED, attempt=1, not_before=T)
    TaskModel.objects.filter(pk=task.pk).update(created=T - datetime.timedelta(minutes=5))
    make_attempt(task, 1, outcome="lost", started=T, finished=T)

    assert labels(task)[1:] == [
        "Due to run (not before)",
        "Attempt 1 started on no worker",
        "Attempt 1 lost",
    ]


def test_an_attempt_released_unstarted_comes_before_the_task_is_due_again() -> None:
    task = make_task(TaskStatus.CREATED, attempt=1, not_before=T)
    TaskModel.objects.filter(pk=task.pk).update(created=T - datetime.timedelta(minutes=5))
    make_attempt(task, 1, outcome="released", started=None, finished=T, error="")

    assert labels(task)[1:] == ["Attempt 1 released", "Due to run (not before)"]


def test_events_come_in_time_order_whatever_order_they_are_found_in() -> None:
    task = make_task(TaskStatus.CREATED, attempt=2, not_before=T + datetime.timedelta(hours=1))
    TaskModel.objects.filter(pk=task.pk).update(created=T - datetime.timedelta(minutes=5))
    make_attempt(task, 2, started=T - datetime.timedelta(minutes=1), finished=T)
    make_attempt(
        task,
        1,
        started=T - datetime.timedelta(minutes=3),
        finished=T - datetime.timedelta(minutes=2),
    )

    moments = [event.at for event in task_timeline(task, list(task.attempts.order_by("number")))]

    assert moments == sorted(moments)
    assert labels(task)[-1] == "Due to run (not before)"
