"""A task's options and ``task.using(...)``: ``firefly_tasks.options``."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings
from django.utils import timezone

from firefly_tasks.exceptions import InvalidTaskError, UnknownQueueError
from firefly_tasks.models import TaskModel
from firefly_tasks.options import VALIDATORS, TaskOptions
from firefly_tasks.registry import registry
from tests.testapp import tasks


def test_using_returns_a_configured_copy_and_leaves_the_task_as_it_was(db: None) -> None:
    later = timezone.now() + datetime.timedelta(hours=1)
    urgent = tasks.add.using(queue="urgent", priority=50, eta=later, max_retries=4)

    row = urgent.schedule(1, 2)
    plain = tasks.add.schedule(3, 4)

    stored = TaskModel.objects.get(pk=row.pk)
    assert (stored.queue, stored.priority, stored.not_before, stored.max_retries) == (
        "urgent",
        50,
        later,
        4,
    )
    assert stored.func_name == tasks.add.name
    assert (plain.queue, plain.priority, plain.not_before <= timezone.now()) == (
        "default",
        0,
        True,
    )
    assert registry.get(tasks.add.name) is tasks.add
    assert urgent(2, 3) == 5  # still the function


def test_using_can_be_chained_and_the_last_option_wins(db: None) -> None:
    row = tasks.add.using(queue="a", priority=1).using(priority=2).schedule(1, 1)
    assert (row.queue, row.priority) == ("a", 2)


def test_using_applies_to_schedule_many(db: None) -> None:
    rows = tasks.add.using(queue="bulk").schedule_many([(1, 2), (3, 4)])
    assert sorted(
        TaskModel.objects.filter(pk__in=[r.pk for r in rows]).values_list("queue", flat=True)
    ) == [
        "bulk",
        "bulk",
    ]


def test_an_eta_given_to_schedule_wins_over_the_one_given_to_using(db: None) -> None:
    soon = timezone.now() + datetime.timedelta(minutes=1)
    later = timezone.now() + datetime.timedelta(hours=2)
    row = tasks.add.using(eta=later).schedule(1, 2, eta=soon)
    assert TaskModel.objects.get(pk=row.pk).not_before == soon


def test_using_works_for_async_tasks(db: None) -> None:
    row = async_to_sync(tasks.async_current_task_id.using(queue="async-q").schedule)()
    assert TaskModel.objects.get(pk=row.pk).queue == "async-q"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": 101}, "priority must be between"),
        ({"priority": "high"}, "priority must be an int"),
        ({"queue": ""}, "queue must be a non-empty string"),
        ({"max_retries": -1}, "max_retries must be a non-negative int"),
        ({"retry_delay": 1.5}, "retry_delay must be a non-negative int"),
        ({"eta": "tomorrow"}, "eta must be a datetime"),
        ({"eta": datetime.datetime(2030, 1, 1)}, "naive datetime"),
        ({"timeout": -1}, "timeout must be a positive number"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": "30"}, "timeout must be a positive number"),
        ({"timeout": True}, "timeout must be a positive number"),
        ({"timeout": float("nan")}, "timeout must be a positive number"),
        ({"timeout": float("inf")}, "timeout must be a positive number"),
        ({"timeout_seconds": 5}, "Unknown task option 'timeout_seconds'"),
        ({"atomic": False}, "atomic is part of the task's code"),
    ],
)
def test_a_bad_option_fails_at_using_and_stores_nothing(
    db: None, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidTaskError, match=message):
        tasks.add.using(**options)
    assert not TaskModel.objects.exists()


def test_a_queue_outside_firefly_queues_fails_at_using(db: None) -> None:
    with override_settings(FIREFLY_QUEUES=["default"]), pytest.raises(UnknownQueueError):
        tasks.add.using(queue="elsewhere")


def test_every_option_has_a_validator_and_a_field() -> None:
    # A new option is a field and a validator: using() and the decorators take it from there.
    fields = set(TaskOptions.__dataclass_fields__)
    assert fields == set(VALIDATORS)


def test_options_are_immutable_and_replace_returns_a_new_object() -> None:
    options = TaskOptions(queue="a")
    changed = options.replace(priority=3)
    assert (options.priority, changed.priority, changed.queue) == (0, 3, "a")
    with pytest.raises(AttributeError):
        options.priority = 5  # type: ignore[misc]
