"""Timeouts with the thread pool: a task past its ``timeout`` gets ``TaskTimeout`` in its own
thread, its attempt ends ``timed_out`` with its writes rolled back, it is retried like a
failure, and the consumer goes on with the next task. Real consumers, every database."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Hashable

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import override_settings

from firefly_tasks import deadlines
from firefly_tasks.execution import run_alone
from firefly_tasks.models import StuckTask, TaskAttempt, TaskModel, TaskStatus
from firefly_tasks.states import AttemptOutcome
from tests.conftest import Consumer, finished, outcomes, raises_in_threads, wait_until
from tests.testapp import tasks
from tests.testapp.models import Note

pytestmark = pytest.mark.slow

# A timeout of 1 or 2 s fires in about that: ten times as long, and more for a loaded machine.
FINISHED_WITHIN = 60


@raises_in_threads
def test_a_busy_loop_past_its_timeout_ends_timed_out_and_the_next_task_runs(
    start_consumer: Callable[..., Consumer],
) -> None:
    spinning = tasks.spin.schedule(60)
    after = tasks.add.schedule(1, 2)
    start_consumer("--concurrency", "1")

    wait_until(finished(spinning, after), timeout=FINISHED_WITHIN)

    spinning.refresh_from_db()
    after.refresh_from_db()
    assert (spinning.status, outcomes(spinning)) == (TaskStatus.FAILED, ["timed_out"])
    assert spinning.error == "TaskTimeout: the attempt ran past its timeout of 2 s"
    assert "_spin" in spinning.traceback  # where it was when stopped
    assert not Note.objects.filter(text="spin began").exists()  # its writes rolled back
    assert (after.status, after.returned) == (TaskStatus.COMPLETED, 3)


@raises_in_threads
def test_a_task_that_swallows_its_timeout_still_times_out_and_is_retried(
    start_consumer: Callable[..., Consumer],
) -> None:
    row = tasks.spin_swallowing_timeouts.schedule(60)
    start_consumer("--concurrency", "1")

    wait_until(finished(row), timeout=FINISHED_WITHIN)

    row.refresh_from_db()
    # max_retries=1: two attempts, both timed out; what it returned was not kept.
    assert (row.status, outcomes(row)) == (TaskStatus.FAILED, ["timed_out", "timed_out"])
    assert row.returned_data is None
    assert row.error.startswith("TaskTimeout: the attempt ran past its timeout of 1 s")


def test_an_async_task_past_its_timeout_is_cancelled_and_times_out(
    start_consumer: Callable[..., Consumer],
) -> None:
    sleeping = async_to_sync(tasks.async_sleep.schedule)(60)
    quick = async_to_sync(tasks.async_sleep.using(timeout=30).schedule)(0.01)
    start_consumer("--concurrency", "1")

    wait_until(finished(sleeping, quick), timeout=FINISHED_WITHIN)

    sleeping.refresh_from_db()
    quick.refresh_from_db()
    assert (sleeping.status, outcomes(sleeping)) == (TaskStatus.FAILED, ["timed_out"])
    assert sleeping.error == "TaskTimeout: the attempt ran past its timeout of 1 s"
    assert (quick.status, quick.returned) == (TaskStatus.COMPLETED, "slept")


@raises_in_threads
def test_a_timeout_in_a_group_commit_rolls_back_only_that_task(
    start_consumer: Callable[..., Consumer],
) -> None:
    # Fast calls share commits once the consumer has seen a few: call 150 spins in the middle
    # of a run of them.
    calls = tasks.spin_at.using(timeout=1).schedule_many([(i, 150) for i in range(300)])
    start_consumer("--concurrency", "1")

    wait_until(finished(*calls), timeout=FINISHED_WITHIN)

    by_status = {
        status: sorted(TaskModel.objects.filter(status=status).values_list("pk", flat=True))
        for status in (TaskStatus.COMPLETED, TaskStatus.FAILED)
    }
    slow = calls[150].pk
    assert by_status[TaskStatus.FAILED] == [slow]
    assert len(by_status[TaskStatus.COMPLETED]) == 299
    assert list(TaskAttempt.objects.filter(task_id=slow).values_list("outcome", flat=True)) == [
        AttemptOutcome.TIMED_OUT
    ]
    notes = set(Note.objects.values_list("text", flat=True))
    assert "spin_at 150" not in notes and len(notes) == 299


def test_the_timeout_is_stored_from_the_call_the_decorator_or_the_setting(db: None) -> None:
    assert tasks.spin.schedule(0).timeout == 2.0
    assert tasks.spin.using(timeout=0.5).schedule(0).timeout == 0.5
    assert tasks.add.schedule(1, 2).timeout is None
    with override_settings(FIREFLY_TASK_TIMEOUT=300):
        assert tasks.add.schedule(1, 2).timeout == 300.0
        assert tasks.spin.schedule(0).timeout == 2.0
    rows = TaskModel.objects.order_by("pk")
    # A consumer of an older release would ignore the column: it leaves these rows alone.
    assert [row.min_engine for row in rows] == [2, 2, 1, 2, 2]


# A thread that does not stop -----------------------------------------------------------------

GRACE = {"FIREFLY_TIMEOUT_GRACE": 1}
EXIT_STUCK = 3  # docs/consumer.md
can_end_sessions = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="an SQLite connection is a file handle: no session"
)


def test_a_thread_blocked_in_c_is_fenced_and_a_consumer_with_one_exits_with_status_3(
    start_consumer: Callable[..., Consumer],
) -> None:
    blocked = tasks.sleep_in_c.schedule(60)
    consumer = start_consumer("--concurrency", "1", **GRACE)

    # Timeout 1 s, grace 1 s, a check a second: well within the wait.
    assert consumer.wait(FINISHED_WITHIN) == EXIT_STUCK, consumer.output()

    blocked.refresh_from_db()
    assert (blocked.status, outcomes(blocked)) == (TaskStatus.FAILED, ["timed_out"])
    assert "did not stop within FIREFLY_TIMEOUT_GRACE (1 s): its thread was fenced" in (
        blocked.error
    )
    assert "stuck" in consumer.output()


@can_end_sessions
def test_one_stuck_thread_of_two_is_fenced_and_the_other_goes_on_until_half_are_stuck(
    start_consumer: Callable[..., Consumer],
) -> None:
    first = tasks.sleep_in_c.schedule(60)
    consumer = start_consumer("--concurrency", "2", **GRACE)
    wait_until(finished(first), timeout=FINISHED_WITHIN)
    after = tasks.add.schedule(2, 3)

    wait_until(finished(after), timeout=FINISHED_WITHIN)
    assert consumer.process.poll() is None  # one of two stuck: it goes on
    after.refresh_from_db()
    assert after.returned == 5

    tasks.sleep_in_c.schedule(60)  # the second thread gets stuck too
    assert consumer.wait(FINISHED_WITHIN) == EXIT_STUCK, consumer.output()


@can_end_sessions
def test_a_query_past_the_timeout_is_stopped_by_the_database(
    start_consumer: Callable[..., Consumer],
) -> None:
    blocked = tasks.sleep_in_query.schedule(60)
    after = tasks.add.schedule(1, 1)
    consumer = start_consumer("--concurrency", "1", FIREFLY_TIMEOUT_GRACE=30)

    wait_until(finished(blocked, after), timeout=FINISHED_WITHIN)

    blocked.refresh_from_db()
    assert (blocked.status, outcomes(blocked)) == (TaskStatus.FAILED, ["timed_out"])
    # Stopped at its timeout by the statement bound, not fenced after the grace.
    assert blocked.error == "TaskTimeout: the attempt ran past its timeout of 1 s"
    assert not Note.objects.filter(text="query began").exists()  # rolled back
    assert TaskModel.objects.get(pk=after.pk).returned == 2
    assert consumer.process.poll() is None


class _LateWatchdog:
    """A watchdog that has not fired yet, as on a loaded machine."""

    def arm(self, seconds: float | None, token: Hashable = None) -> None:
        pass

    def disarm(self) -> type[BaseException] | None:
        return None

    def cancelled(self, thread: int) -> bool:
        return False


@can_end_sessions
def test_a_query_stopped_by_its_bound_before_the_watchdog_fires_is_a_timeout(
    transactional_db: None,
) -> None:
    rounds = 3
    deadlines.use(_LateWatchdog())
    try:
        for _ in range(rounds):
            row = tasks.sleep_in_query.using(timeout=0.3).schedule(60)
            claimed = TaskModel.objects.claim([row.queue], 1, None)
            assert run_alone(claimed[0]) == "failed"
    finally:
        deadlines.use(deadlines.watchdog)
    attempts = TaskAttempt.objects.order_by("pk")
    assert [a.outcome for a in attempts] == [AttemptOutcome.TIMED_OUT] * rounds
    assert {a.error for a in attempts} == {"TaskTimeout: the attempt ran past its timeout of 0.3 s"}
    assert not Note.objects.exists()  # rolled back


@can_end_sessions
def test_a_thread_blocked_on_its_query_is_freed_by_ending_its_session(
    start_consumer: Callable[..., Consumer],
) -> None:
    blocked = tasks.sleep_in_unbounded_query.schedule(60)
    after = tasks.add.schedule(1, 1)
    consumer = start_consumer("--concurrency", "1", **GRACE)

    wait_until(finished(blocked, after), timeout=FINISHED_WITHIN)

    blocked.refresh_from_db()
    assert (blocked.status, outcomes(blocked)) == (TaskStatus.FAILED, ["timed_out"])
    assert "its thread was fenced" in blocked.error
    assert TaskModel.objects.get(pk=after.pk).returned == 2
    assert consumer.process.poll() is None  # its thread came back: nothing is stuck


@can_end_sessions
def test_a_fenced_thread_keeps_its_concurrency_slot_and_unique_key_until_it_returns(
    start_consumer: Callable[..., Consumer],
) -> None:
    seconds = 8  # the thread's sleep: it is fenced after about 2 s (timeout 1, grace 1)
    keyed = tasks.sleep_in_c.using(concurrency_limit=1, concurrency_key="stuck")
    blocked = keyed.using(unique_key="only-one").schedule(seconds)
    consumer = start_consumer("--concurrency", "2", **GRACE)
    wait_until(finished(blocked), timeout=FINISHED_WITHIN)
    blocked.refresh_from_db()
    assert (blocked.status, outcomes(blocked)) == (TaskStatus.FAILED, ["timed_out"])

    # Its thread still sleeps: its unique key is still held, its slot still taken.
    again = keyed.using(unique_key="only-one").schedule(0)
    assert again.deduplicated and again.pk == blocked.pk
    after = keyed.schedule(0)
    wait_until(finished(after), timeout=FINISHED_WITHIN + seconds)

    began = TaskAttempt.objects.get(task=blocked).started
    started = TaskAttempt.objects.get(task=after).started
    assert began is not None and started is not None
    assert started >= began + datetime.timedelta(seconds=seconds), (began, started)
    assert consumer.process.poll() is None  # one of two threads stuck: it goes on
    assert not StuckTask.objects.exists()  # its thread returned: its slots are free
    fresh = keyed.using(unique_key="only-one").schedule(0)
    assert not fresh.deduplicated
