"""Queue controls and the list of known queues: ``firefly_tasks.queues``."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from firefly_tasks.exceptions import InvalidTaskError, UnknownQueueError
from firefly_tasks.models import QueueModel, TaskModel
from firefly_tasks.queues import known_queues, pause_queue, resume_queue
from firefly_tasks.registry import registry
from tests.testapp import tasks


def test_known_queues_include_the_queues_of_registered_tasks(db: None) -> None:
    named = {task.queue for task in registry if task.queue}

    queues = known_queues()

    assert {"other", "reports"} <= named
    assert named <= set(queues)
    assert "default" in queues


@override_settings(FIREFLY_QUEUES=["default", "emails", "sms"])
def test_known_queues_include_firefly_queues(db: None) -> None:
    assert {"emails", "sms"} <= set(known_queues())


def test_known_queues_include_queues_with_a_control_row(db: None) -> None:
    QueueModel.objects.create(name="legacy")

    assert "legacy" in known_queues()


@override_settings(FIREFLY_DEFAULT_QUEUE="bulk")
def test_known_queues_include_the_default_queue(db: None) -> None:
    assert "bulk" in known_queues()


@override_settings(FIREFLY_QUEUES=["default", "emails"])
def test_known_queues_are_the_sorted_union_without_duplicates(db: None) -> None:
    QueueModel.objects.create(name="archive")
    QueueModel.objects.create(name="emails")
    expected = {"default", "emails", "archive"} | {task.queue for task in registry if task.queue}

    assert known_queues() == sorted(expected)


def test_known_queues_do_not_scan_the_task_table(db: None) -> None:
    tasks.add.schedule(1, 2)
    TaskModel.objects.update(queue="only-in-rows")

    assert "only-in-rows" not in known_queues()


def test_pause_queue_creates_its_control_row(db: None) -> None:
    before = timezone.now()

    assert pause_queue("emails", by="ops", reason="provider down") is True

    queue = QueueModel.objects.get(name="emails")
    assert queue.paused is True
    assert (queue.paused_by, queue.reason) == ("ops", "provider down")
    assert queue.paused_at is not None
    assert before <= queue.paused_at <= timezone.now()


def test_pausing_a_paused_queue_changes_nothing(db: None) -> None:
    pause_queue("emails", by="first", reason="one")

    assert pause_queue("emails", by="second", reason="two") is False

    queue = QueueModel.objects.get(name="emails")
    assert (queue.paused_by, queue.reason) == ("first", "one")


def test_resume_queue_unpauses_and_keeps_the_row(db: None) -> None:
    pause_queue("emails", by="ops", reason="maintenance")

    assert resume_queue("emails") is True

    queue = QueueModel.objects.get(name="emails")
    assert queue.paused is False
    assert (queue.paused_at, queue.paused_by, queue.reason) == (None, "", "")
    assert "emails" in known_queues()


def test_resume_of_a_queue_that_is_not_paused_returns_false(db: None) -> None:
    assert resume_queue("emails") is False
    assert not QueueModel.objects.exists()


def test_paused_queue_can_be_paused_again_after_resume(db: None) -> None:
    pause_queue("emails")
    resume_queue("emails")

    assert pause_queue("emails", reason="again") is True
    assert QueueModel.objects.get(name="emails").reason == "again"


@override_settings(FIREFLY_QUEUES=["default"])
def test_pausing_a_queue_not_in_firefly_queues_is_refused(db: None) -> None:
    with pytest.raises(UnknownQueueError):
        pause_queue("emails")

    assert not QueueModel.objects.exists()


@pytest.mark.parametrize("name", ["", "x" * 101, None])
def test_pausing_an_invalid_queue_name_is_refused(db: None, name: Any) -> None:
    with pytest.raises(InvalidTaskError):
        pause_queue(name)

    assert not QueueModel.objects.exists()
