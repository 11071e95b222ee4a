"""Rescue of dead workers' tasks: ``firefly_tasks.maintenance``."""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from firefly_tasks.clock import DatabaseNow
from firefly_tasks.dialects import dialect
from firefly_tasks.maintenance import mark_dead_workers, recover_orphans
from firefly_tasks.models import (
    AttemptOutcome,
    Isolation,
    TaskAttempt,
    TaskModel,
    TaskStatus,
    WorkerModel,
    WorkerState,
)
from tests.conftest import outcomes, run_at_once
from tests.testapp import tasks

row_locks = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite locks the whole database, with its own timeout"
)


# A charged loss needs a worker silent since after the database server started (a server up
# for a few seconds at least: a test database that has just restarted would spare it).
SILENT, TIMEOUT = 4.0, 2.0


def worker(silent_for: float = 0, name: str = "w") -> WorkerModel:
    return WorkerModel.objects.create(
        name=name,
        hostname="localhost",
        pid=1,
        last_heartbeat=timezone.now() - datetime.timedelta(seconds=silent_for),
    )


def run_on(holder: WorkerModel, n: int = 1) -> list[TaskModel]:
    """Schedule n tasks and have ``holder`` claim them: they are running on it."""
    tasks.add.schedule_many([(1, 2)] * n)
    return TaskModel.objects.claim(["default"], n, holder.pk)


def started_alone(row: TaskModel) -> None:
    """Record that ``row`` started running alone, as a consumer does before it runs a task
    recovered from a dead worker."""
    TaskModel.objects.filter(pk=row.pk).update(isolation=Isolation.STARTED_ALONE)


def test_silent_worker_is_marked_dead_and_its_tasks_go_back_to_the_queue_uncharged(
    db: None,
) -> None:
    dead = worker(silent_for=60)
    (row,) = run_on(dead)

    assert mark_dead_workers(timeout=30) == {dead.pk: 1}

    dead.refresh_from_db()
    row.refresh_from_db()
    assert dead.state == WorkerState.DEAD
    assert dead.stopped is not None
    # Nothing proves the task had started: it is not charged, and runs alone next time.
    assert (row.status, row.worker_id, row.lost_attempts, row.retry_attempts) == (
        TaskStatus.CREATED,
        None,
        0,
        0,
    )
    assert row.isolation == Isolation.ALONE
    (attempt,) = row.attempts.all()
    assert (attempt.outcome, attempt.number, attempt.worker_id) == ("released", 1, dead.pk)
    assert attempt.error.startswith("Released")


def test_task_that_died_with_its_worker_while_running_alone_is_charged(db: None) -> None:
    dead = worker(silent_for=SILENT)  # silent for less than the database server has run
    (row,) = run_on(dead)
    started_alone(row)

    assert mark_dead_workers(timeout=TIMEOUT) == {dead.pk: 1}

    row.refresh_from_db()
    assert (row.status, row.lost_attempts, row.isolation) == (
        TaskStatus.CREATED,
        1,
        Isolation.ALONE,
    )
    (attempt,) = row.attempts.all()
    assert (attempt.outcome, attempt.worker_id) == ("lost", dead.pk)
    assert attempt.error.startswith("WorkerLost")


@override_settings(FIREFLY_MAX_LOST_ATTEMPTS=2)
def test_tasks_never_proven_started_are_never_poisoned(db: None) -> None:
    tasks.add.schedule_many([(1, 2)] * 3)
    for loss in range(10):
        holder = worker(silent_for=60, name=f"crashing-{loss}")
        assert len(TaskModel.objects.claim(["default"], 3, holder.pk)) == 3
        mark_dead_workers(timeout=30)

    rows = list(TaskModel.objects.all())
    assert [(r.status, r.lost_attempts) for r in rows] == [(TaskStatus.CREATED, 0)] * 3
    assert set(TaskAttempt.objects.values_list("outcome", flat=True)) == {"released"}


def test_worker_that_beat_recently_is_left_alone(db: None) -> None:
    alive = worker(silent_for=5)
    (row,) = run_on(alive)

    assert mark_dead_workers(timeout=30) == {}

    alive.refresh_from_db()
    row.refresh_from_db()
    assert alive.state == WorkerState.RUNNING
    assert row.status == TaskStatus.RUNNING


def test_stopped_worker_is_not_declared_dead(db: None) -> None:
    stopped = worker(silent_for=600)
    stopped.state = WorkerState.STOPPED
    stopped.save()

    assert mark_dead_workers(timeout=30) == {}
    stopped.refresh_from_db()
    assert stopped.state == WorkerState.STOPPED


@override_settings(FIREFLY_MAX_LOST_ATTEMPTS=2)
def test_task_lost_one_time_more_than_allowed_fails_as_poison(db: None) -> None:
    tasks.add.schedule(1, 2)
    outcomes = []
    for loss in range(3):
        holder = worker(silent_for=SILENT, name=f"crashing-{loss}")
        (row,) = TaskModel.objects.claim(["default"], 1, holder.pk)
        started_alone(row)
        mark_dead_workers(timeout=TIMEOUT)
        row.refresh_from_db()
        outcomes.append(row.status)

    assert outcomes == [TaskStatus.CREATED, TaskStatus.CREATED, TaskStatus.FAILED]
    assert row.error.startswith("PoisonTask: lost with its worker 3 times")
    assert list(row.attempts.values_list("outcome", flat=True)) == ["lost"] * 3
    assert TaskModel.objects.claim(["default"], 1) == []  # never run again


def test_unstarted_claims_are_released_as_if_never_claimed(db: None) -> None:
    holder = worker()
    rows = run_on(holder, 3)

    assert TaskModel.objects.release(rows[1:]) == 2

    states = dict(TaskModel.objects.values_list("pk", "status"))
    assert [states[r.pk] for r in rows] == [
        TaskStatus.RUNNING,
        TaskStatus.CREATED,
        TaskStatus.CREATED,
    ]
    released = TaskModel.objects.get(pk=rows[1].pk)
    assert (released.attempt, released.worker_id, released.started) == (0, None, None)
    assert not released.attempts.exists()


def test_concurrent_checks_recover_each_dead_worker_exactly_once(transactional_db: None) -> None:
    dead = [worker(silent_for=60, name=f"dead-{i}") for i in range(3)]
    for holder in dead:
        run_on(holder, 4)

    results = run_at_once(lambda: mark_dead_workers(timeout=30))

    recovered = [pk for result in results for pk in result]
    assert sorted(recovered) == sorted(w.pk for w in dead)  # each by exactly one thread
    assert sum(n for result in results for n in result.values()) == 12
    assert TaskModel.objects.filter(status=TaskStatus.CREATED).count() == 12
    assert TaskAttempt.objects.filter(outcome="released").count() == 12  # one each


def test_liveness_is_judged_by_the_database_clock_not_the_hosts(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    alive = worker()
    WorkerModel.objects.filter(pk=alive.pk).update(last_heartbeat=DatabaseNow())
    # This host's clock runs an hour ahead of the database's: by its own clock every
    # heartbeat is old, by the database's the worker beat just now.
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + datetime.timedelta(hours=1))

    assert mark_dead_workers(timeout=30) == {}
    alive.refresh_from_db()
    assert alive.state == WorkerState.RUNNING


def test_running_rows_without_a_live_worker_are_recovered(db: None) -> None:
    gone = worker(name="deleted")
    stopped = worker(name="stopped")
    orphans = [*run_on(gone), *run_on(stopped)]
    (no_worker,) = run_on(worker(name="cleared"))
    orphans.append(no_worker)
    TaskModel.objects.filter(pk=no_worker.pk).update(worker=None)
    WorkerModel.objects.filter(pk=gone.pk).delete()  # pruned: the row points at nothing
    TaskModel.objects.filter(pk=orphans[0].pk).update(worker_id=gone.pk)
    WorkerModel.objects.filter(pk=stopped.pk).update(state=WorkerState.STOPPED)
    claimed_long_ago = timezone.now() - datetime.timedelta(seconds=60)
    TaskModel.objects.update(started=claimed_long_ago)

    assert recover_orphans(timeout=30) == 3

    holders = []
    for row in orphans:
        row.refresh_from_db()
        assert (row.status, row.worker_id, row.lost_attempts) == (TaskStatus.CREATED, None, 0)
        (attempt,) = row.attempts.all()
        assert attempt.outcome == "released"
        holders.append(attempt.worker_id)
    # The attempt names the worker that held the row, where that worker still exists.
    assert holders == [None, stopped.pk, None]
    assert TaskModel.objects.claim(["default"], 10) != []  # runnable again


def test_running_rows_of_live_workers_and_fresh_claims_are_not_orphans(db: None) -> None:
    run_on(worker(name="alive"))
    (inline,) = run_on(worker(name="inline"))
    # Run inline (FIREFLY_RUN_IMMEDIATELY) has no worker: recent, so left alone.
    TaskModel.objects.filter(pk=inline.pk).update(worker=None)

    assert recover_orphans(timeout=30) == 0
    assert TaskModel.objects.filter(status=TaskStatus.RUNNING).count() == 2


@row_locks
def test_a_dead_workers_row_locked_by_a_frozen_transaction_defers_its_recovery(
    transactional_db: None,
) -> None:
    dead = worker(silent_for=60)
    (row,) = run_on(dead)
    with frozen_transaction(row):
        # Gives up on the locked row instead of blocking the heartbeat; nothing committed.
        assert mark_dead_workers(timeout=30, lock_wait=0.2) == {}
        dead.refresh_from_db()
        assert dead.state == WorkerState.RUNNING
    assert mark_dead_workers(timeout=30, lock_wait=0.2) == {dead.pk: 1}  # the next turn
    row.refresh_from_db()
    assert row.status == TaskStatus.CREATED


@contextlib.contextmanager
def frozen_transaction(row: TaskModel) -> Iterator[None]:
    """Hold the task's row in another connection's open transaction, as a consumer paused
    between its completion and its commit does, until the block ends (then rolled back)."""
    locked, release = threading.Event(), threading.Event()

    def frozen_consumer() -> None:
        try:
            with transaction.atomic():
                TaskModel.objects.filter(pk=row.pk).update(error="writing its completion")
                locked.set()
                release.wait(30)
                raise RuntimeError("rolled back")  # it never commits
        except RuntimeError:
            pass
        finally:
            connection.close()

    holder = threading.Thread(target=frozen_consumer)
    holder.start()
    try:
        assert locked.wait(10)
        yield
    finally:
        release.set()
        holder.join(30)


def _lock_waiters() -> int:
    """Statements of this database waiting for a row lock (on MariaDB: running for more than
    200 ms, which in the test below only a wait for a lock takes)."""
    if connection.vendor == "postgresql":
        sql = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
    else:  # not always in innodb_trx (a read of one row by id waits before its trx starts)
        sql = (
            "SELECT count(*) FROM information_schema.processlist WHERE db = DATABASE() "
            "AND command = 'Query' AND id <> CONNECTION_ID() AND time_ms > 200"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return int(cursor.fetchone()[0])


@row_locks
def test_a_worker_that_beats_while_its_frozen_transaction_is_waited_for_is_not_declared_dead(
    transactional_db: None,
) -> None:
    silent = worker(silent_for=60)
    (row,) = run_on(silent)
    found: list[dict[int, int]] = []

    def rescuer() -> None:
        try:
            found.append(mark_dead_workers(timeout=30, lock_wait=20))
        finally:
            connection.close()

    def resumed_heartbeat() -> None:
        try:
            WorkerModel.objects.filter(pk=silent.pk).update(last_heartbeat=DatabaseNow())
        finally:
            connection.close()

    rescue = threading.Thread(target=rescuer)
    beat = threading.Thread(target=resumed_heartbeat)
    with frozen_transaction(row):
        rescue.start()
        deadline = time.monotonic() + 10
        while _lock_waiters() < 1:  # the rescuer waits for the held row
            assert rescue.is_alive(), f"the rescuer did not wait for the task's row: {found}"
            assert time.monotonic() < deadline, "the rescuer never waited for the task's row"
            time.sleep(0.01)
        # The frozen consumer resumes: its heartbeat, then the end of its transaction.
        beat.start()
        beat.join(5)
        beat_waited = beat.is_alive()
    rescue.join(30)
    beat.join(30)
    assert not beat_waited, "the heartbeat waited for the rescuer: the worker's row was held"
    assert found == [{}]
    silent.refresh_from_db()
    row.refresh_from_db()
    assert (silent.state, row.status) == (WorkerState.RUNNING, TaskStatus.RUNNING)


def test_recovering_a_claim_given_back_and_taken_again_at_the_same_attempt_changes_nothing(
    db: None,
) -> None:
    first, second = worker(silent_for=60, name="first"), worker(name="second")
    (stale,) = run_on(first)  # what a rescuer read of the first worker's rows
    assert TaskModel.objects.release([stale]) == 1  # its consumer gives it back unrun
    (taken,) = TaskModel.objects.claim(["default"], 1, second.pk)
    assert (taken.pk, taken.attempt) == (stale.pk, stale.attempt)  # the same attempt again

    assert not TaskModel.objects.recover(stale, first, AttemptOutcome.LOST)
    assert mark_dead_workers(timeout=30) == {first.pk: 0}
    taken.refresh_from_db()
    assert (taken.status, taken.worker_id, taken.attempt) == (TaskStatus.RUNNING, second.pk, 1)
    assert not TaskAttempt.objects.filter(task_id=taken.pk).exists()


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has no server to restart")
def test_a_task_of_a_worker_silent_since_before_the_database_restarted_is_released_uncharged(
    db: None,
) -> None:
    """A consumer killed while it waited for a restarting database may have recorded a task's
    start alone just before the restart and never begun it: the restart, not the task,
    silenced it. A worker silent since after the server started is charged as before."""
    uptime = dialect(connection).server_uptime()
    assert uptime is not None and uptime > SILENT + 1, (
        uptime
    )  # the server runs, and has for a while
    before = worker(silent_for=uptime + 60, name="silent-since-before-the-restart")
    after = worker(silent_for=SILENT, name="silent-since-after-it")
    (spared,), (charged,) = run_on(before), run_on(after)
    started_alone(spared)
    started_alone(charged)

    assert mark_dead_workers(timeout=TIMEOUT) == {before.pk: 1, after.pk: 1}

    spared.refresh_from_db()
    charged.refresh_from_db()
    assert (spared.status, spared.lost_attempts, outcomes(spared)) == (
        TaskStatus.CREATED,
        0,
        ["released"],
    )
    assert "fell silent when the database server restarted" in spared.attempts.get().error
    assert (charged.status, charged.lost_attempts, outcomes(charged)) == (
        TaskStatus.CREATED,
        1,
        ["lost"],
    )
