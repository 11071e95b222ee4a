"""Signals sent over a task's life: ``firefly_tasks.signals``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.dispatch import Signal

from firefly_tasks import signals
from firefly_tasks.exceptions import SerializationError
from firefly_tasks.models import TaskModel, TaskStatus
from firefly_tasks.testing import run_pending_tasks
from tests.conftest import ROOT
from tests.dep14 import FIREFLY
from tests.testapp import tasks

ALL_SIGNALS = {
    "task_scheduled": signals.task_scheduled,
    "task_started": signals.task_started,
    "task_completed": signals.task_completed,
    "task_failed": signals.task_failed,
}


Received = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def received() -> Iterator[Received]:
    """Every Firefly signal sent during the test, as (name, keyword arguments)."""
    events: Received = []
    names = {signal: name for name, signal in ALL_SIGNALS.items()}

    def receiver(signal: Signal, **kwargs: Any) -> None:
        events.append((names[signal], kwargs))

    for signal in ALL_SIGNALS.values():
        signal.connect(receiver, dispatch_uid="test_signals.received")
    yield events
    for signal in ALL_SIGNALS.values():
        signal.disconnect(dispatch_uid="test_signals.received")


@pytest.fixture
def raising_receivers() -> Iterator[None]:
    def receiver(**kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    for signal in ALL_SIGNALS.values():
        signal.connect(receiver, dispatch_uid="test_signals.raising")
    yield
    for signal in ALL_SIGNALS.values():
        signal.disconnect(dispatch_uid="test_signals.raising")


def test_schedule_sends_task_scheduled_with_the_saved_row(db: None, received: Received) -> None:
    row = tasks.add.schedule(1, 2)

    ((name, kwargs),) = received
    assert name == "task_scheduled"
    assert kwargs["sender"] is TaskModel
    assert kwargs["task"] is row
    assert kwargs["task"].pk is not None


def test_schedule_many_sends_task_scheduled_for_every_row(db: None, received: Received) -> None:
    rows = tasks.add.schedule_many([(1, 2), (3, 4)])

    assert [(name, kwargs["task"]) for name, kwargs in received] == [
        ("task_scheduled", rows[0]),
        ("task_scheduled", rows[1]),
    ]


def test_bad_input_sends_nothing(db: None, received: Received) -> None:
    with pytest.raises(SerializationError):
        tasks.echo.schedule(object())

    assert received == []


def test_completed_task_sends_started_then_completed_with_the_row(
    db: None, received: Received
) -> None:
    row = tasks.add.schedule(2, 3)
    received.clear()

    run_pending_tasks()

    assert [name for name, _ in received] == ["task_started", "task_completed"]
    started, completed = (kwargs for _, kwargs in received)
    assert started["task"].pk == row.pk
    assert completed["task"] is started["task"]
    assert completed["task"].status == TaskStatus.COMPLETED
    assert completed["result"] == 5
    assert completed["sender"] is TaskModel


def test_failed_task_sends_started_then_failed_with_the_exception(
    db: None, received: Received
) -> None:
    row = tasks.write_note_then_fail.schedule("x")
    received.clear()

    run_pending_tasks()

    assert [name for name, _ in received] == ["task_started", "task_failed"]
    failed = received[1][1]
    assert failed["task"].pk == row.pk
    assert isinstance(failed["exception"], RuntimeError)
    assert failed["will_retry"] is False


def test_failure_with_retries_left_says_it_will_retry(db: None, received: Received) -> None:
    tasks.fail_with_delay.schedule()
    received.clear()

    run_pending_tasks()

    assert [(name, kwargs.get("will_retry")) for name, kwargs in received] == [
        ("task_started", None),
        ("task_failed", True),
    ]


def test_raising_receivers_do_not_break_scheduling_or_execution(
    db: None,
    raising_receivers: None,
    received: Received,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="firefly_tasks"):
        ok = tasks.add.schedule(2, 3)
        failing = tasks.write_note_then_fail.schedule("x")
        assert run_pending_tasks() == 2

    ok.refresh_from_db()
    assert ok.status == TaskStatus.COMPLETED
    assert ok.returned == 5
    failing.refresh_from_db()
    assert failing.status == TaskStatus.FAILED
    assert failing.error == "RuntimeError: failed after writing x"
    # Receivers connected after the raising one still hear every signal.
    assert [name for name, _ in received].count("task_scheduled") == 2
    assert "task_completed" in [name for name, _ in received]
    assert "signal receiver failed" in caplog.text


def test_a_process_that_never_uses_the_dep14_backend_sends_signals_to_no_one() -> None:
    # Sending a signal with no receiver costs nothing; with one, a few microseconds per task.
    # The framework's relays connect only once the process creates a FireflyBackend.
    code = (
        "import django; django.setup()\n"
        "from firefly_tasks import signals\n"
        "print(len(signals.task_started.receivers), len(signals.task_completed.receivers))\n"
        "from firefly_tasks.backends import firefly_backend\n"
        "firefly_backend('default')\n"
        "print(len(signals.task_started.receivers), len(signals.task_completed.receivers))\n"
    )
    tasks_setting = json.dumps({"TASKS": {"default": {"BACKEND": FIREFLY}}})
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    env["FIREFLY_TEST_OVERRIDES"] = tasks_setting
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "0", "1", "1"]
