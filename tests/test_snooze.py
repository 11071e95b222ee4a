"""Snooze: a task puts itself back to run later, without spending a retry; past
``FIREFLY_MAX_SNOOZES`` it fails. Real consumers, every database."""

from __future__ import annotations

import math
import signal
from collections.abc import Callable

import pytest

from firefly_tasks import Snooze
from firefly_tasks.models import TaskModel, TaskStatus
from tests.conftest import Consumer, finished, outcomes, wait_until
from tests.testapp import tasks
from tests.testapp.models import Note

WITHIN = 60


@pytest.mark.slow
def test_a_snoozed_task_runs_again_later_without_spending_a_retry(
    start_consumer: Callable[..., Consumer],
) -> None:
    row = tasks.snooze_then_note.schedule(2, "done")  # max_retries=0: no retry to spend
    start_consumer("--concurrency", "1")

    wait_until(finished(row), timeout=WITHIN)

    row.refresh_from_db()
    assert (row.status, row.returned) == (TaskStatus.COMPLETED, "done")
    assert outcomes(row) == ["snoozed", "snoozed", "completed"]
    assert (row.retry_attempts, row.snoozes) == (0, 2)
    # Each snoozed attempt's writes rolled back (an atomic task): only the last one's stand.
    assert sorted(Note.objects.values_list("text", flat=True)) == ["done", "done attempt"]
    first = row.attempts.order_by("number").first()
    assert first is not None and first.error == "Snooze: runs again in 0.1 s"


@pytest.mark.slow
def test_a_task_that_keeps_snoozing_fails_past_the_limit(
    start_consumer: Callable[..., Consumer],
) -> None:
    row = tasks.snooze_then_note.schedule(1000, "never")
    consumer = start_consumer("--concurrency", "1", FIREFLY_MAX_SNOOZES=3)

    wait_until(finished(row), timeout=WITHIN)
    consumer.signal(signal.SIGTERM)  # else it runs the requeued task again at once
    assert consumer.wait() == 0

    row.refresh_from_db()
    assert row.status == TaskStatus.FAILED
    assert outcomes(row) == ["snoozed"] * 3 + ["failed"]
    assert row.error == "SnoozeLimit: the task snoozed 4 times (FIREFLY_MAX_SNOOZES = 3)"
    # An operator's requeue gives it its snoozes back.
    assert TaskModel.objects.filter(pk=row.pk).requeue() == 1
    assert TaskModel.objects.get(pk=row.pk).snoozes == 0


@pytest.mark.slow
def test_fast_tasks_that_snooze_in_a_group_commit_alone_go_back(
    start_consumer: Callable[..., Consumer],
) -> None:
    # Fast calls share commits once the consumer has seen a few: every tenth snoozes once.
    rows = tasks.snooze_then_note.schedule_many(
        [(1 if i % 10 == 0 else 0, f"call {i}") for i in range(300)]
    )
    start_consumer("--concurrency", "1")

    wait_until(finished(*rows), timeout=WITHIN)

    for i, row in enumerate(rows):
        expected = ["snoozed", "completed"] if i % 10 == 0 else ["completed"]
        assert outcomes(row) == expected, i
    assert TaskModel.objects.filter(status=TaskStatus.COMPLETED).count() == 300
    notes = list(Note.objects.values_list("text", flat=True))
    assert sorted(n for n in notes if not n.endswith("attempt")) == sorted(
        f"call {i}" for i in range(300)
    )


@pytest.mark.parametrize("seconds", [-1, math.inf, math.nan, 10**9])
def test_snooze_refuses_seconds_out_of_range(seconds: float) -> None:
    with pytest.raises(ValueError, match="Snooze takes seconds from 0"):
        Snooze(seconds)


@pytest.mark.parametrize("seconds", ["30", None, True])
def test_snooze_refuses_what_is_not_a_number(seconds: object) -> None:
    with pytest.raises(TypeError, match="Snooze takes a number of seconds"):
        Snooze(seconds)  # type: ignore[arg-type]
