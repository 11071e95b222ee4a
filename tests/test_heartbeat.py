"""A consumer's heartbeat and liveness: ``firefly_tasks.heartbeat``."""

from __future__ import annotations

import datetime
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count, QuerySet
from django.test import override_settings
from django.utils import timezone

from firefly_tasks.batches import BatchRunner
from firefly_tasks.heartbeat import Heartbeat
from firefly_tasks.isolation import IsolationLock
from firefly_tasks.maintenance import mark_dead_workers
from firefly_tasks.models import TaskModel, TaskStatus, WorkerModel, WorkerState
from firefly_tasks.states import RunOutcome
from firefly_tasks.worker import Worker
from tests.conftest import Consumer, wait_until
from tests.testapp import tasks
from tests.testapp.models import Execution

FAST = {"FIREFLY_HEARTBEAT_INTERVAL": 0.2, "FIREFLY_WORKER_TIMEOUT": 1.0}


def _consumer(name: str) -> tuple[Worker, WorkerModel]:
    """A consumer and its worker row, as ``consume_tasks`` makes them, not started."""
    worker = Worker(["default"], name=name)
    worker.row = row = WorkerModel.objects.create(name=worker.name, hostname="h", pid=1)
    return worker, row


def _declare_dead(row: WorkerModel) -> dict[int, int]:
    """Silent for a minute: another consumer declares it dead and recovers its tasks."""
    WorkerModel.objects.filter(pk=row.pk).update(
        last_heartbeat=timezone.now() - datetime.timedelta(seconds=60)
    )
    return mark_dead_workers()


def _break_own_connection() -> None:
    """End this connection's session on the server, as a database restart would."""
    with pytest.raises(Exception), connection.cursor() as cursor:  # noqa: B017
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        else:
            cursor.execute("KILL CONNECTION_ID()")
        cursor.fetchall()


@pytest.mark.skipif(connection.vendor == "sqlite", reason="an SQLite connection cannot be cut off")
@override_settings(FIREFLY_WORKER_TIMEOUT=30.0)
def test_a_worker_back_from_an_outage_declares_no_one_dead_for_one_timeout(
    transactional_db: None,
) -> None:
    worker, row = _consumer("back-from-outage")
    # Another consumer, cut off by the same outage, has not reported in yet.
    other = WorkerModel.objects.create(
        name="other",
        hostname="h",
        pid=2,
        last_heartbeat=timezone.now() - datetime.timedelta(seconds=60),
    )
    heartbeat = Heartbeat(worker)

    _break_own_connection()
    heartbeat.tick()  # fails: the database is "down"
    heartbeat.tick()  # back: beats, but declares no one dead yet

    other.refresh_from_db()
    assert other.state == WorkerState.RUNNING
    row.refresh_from_db()
    assert row.last_heartbeat > other.last_heartbeat  # the second tick did beat

    with override_settings(FIREFLY_WORKER_TIMEOUT=0.2):
        heartbeat._grace_until = 0.0  # the timeout has passed: dead workers are dead
        heartbeat.tick()
    other.refresh_from_db()
    assert other.state == WorkerState.DEAD


@override_settings(**FAST)
def test_a_worker_that_was_declared_dead_drops_the_tasks_taken_from_it(
    transactional_db: None,
) -> None:
    worker, row = _consumer("paused")
    tasks.record_execution.schedule_many([()] * 3)
    claimed = TaskModel.objects.claim(["default"], 3, row.pk)
    revivals = worker.liveness.revivals
    # Paused past the timeout: another consumer declared it dead and recovered its tasks.
    assert _declare_dead(row) == {row.pk: 3}
    Heartbeat(worker).tick()  # continued: its heartbeat finds it dead and revives it
    assert worker.liveness.revivals == revivals + 1

    runner = BatchRunner(row, worker.stopping, liveness=worker.liveness)
    outcomes, not_run = runner.run(claimed, revivals)

    assert outcomes == []
    assert not_run == claimed
    assert not Execution.objects.exists()
    assert set(TaskModel.objects.values_list("status", flat=True)) == {TaskStatus.CREATED}


@override_settings(**FAST)
def test_a_thread_held_back_by_a_task_run_alone_checks_its_batch_before_it_starts_it(
    transactional_db: None,
) -> None:
    """A worker thread that checked its batch, then waited for a task run alone (which may take
    any time, and the consumer may be paused meanwhile), checks again before it starts one."""
    worker, row = _consumer("held-back")
    tasks.record_execution.schedule_many([()] * 3)
    claimed = TaskModel.objects.claim(["default"], 3, row.pk)
    lock = IsolationLock()
    runner = BatchRunner(row, worker.stopping, liveness=worker.liveness, lock=lock)
    result: list[tuple[list[RunOutcome], list[TaskModel]]] = []

    def run() -> None:
        try:
            result.append(runner.run(claimed, worker.liveness.revivals))
        finally:
            connection.close()

    with lock.alone():  # another thread's task, run alone
        thread = threading.Thread(target=run)
        thread.start()
        wait_until(lambda: lock._waiting_shared == 1, timeout=10)
        # Paused past the timeout meanwhile: declared dead, its tasks recovered.
        worker.liveness.proved_at -= 60
        assert _declare_dead(row) == {row.pk: 3}
    thread.join(10)

    assert result == [([], claimed)]
    assert not Execution.objects.exists()
    assert set(TaskModel.objects.values_list("status", flat=True)) == {TaskStatus.CREATED}


@override_settings(**FAST)
def test_a_stale_batch_runs_no_task_given_back_and_claimed_again_at_the_same_attempt(
    transactional_db: None,
) -> None:
    """A task given back unstarted takes back its attempt number; claimed again by another
    thread of the same consumer, it is held by the same worker at the same attempt: only the
    claim's stamp tells a batch that still holds it from one that no longer does."""
    worker, row = _consumer("stale")
    tasks.record_execution.schedule()
    stale = TaskModel.objects.claim(["default"], 1, row.pk)
    assert TaskModel.objects.release(stale) == 1
    again = TaskModel.objects.claim(["default"], 1, row.pk)  # another of its threads
    assert [(r.pk, r.attempt) for r in again] == [(r.pk, r.attempt) for r in stale]
    worker.liveness.proved_at -= 60  # paused meanwhile: the batch is checked before it runs
    runner = BatchRunner(row, worker.stopping, liveness=worker.liveness)

    assert runner.run(stale, worker.liveness.revivals) == ([], stale)
    assert not Execution.objects.exists()
    assert TaskModel.objects.get().started == again[0].started


@override_settings(**FAST)
def test_a_worker_declared_dead_runs_nothing_it_claimed_before_it_revived(
    transactional_db: None,
) -> None:
    """A consumer resumed after a pause claims before its heartbeat finds it dead: such rows
    are an orphan's, which any consumer may recover, so none starts until it has revived."""
    worker, row = _consumer("dead-claimer")
    assert _declare_dead(row) == {row.pk: 0}
    tasks.record_execution.schedule_many([()] * 2)
    claimed = TaskModel.objects.claim(["default"], 2, row.pk)
    worker.liveness.proved_at -= 60
    runner = BatchRunner(row, worker.stopping, liveness=worker.liveness)

    assert runner.run(claimed, worker.liveness.revivals) == ([], claimed)
    assert not Execution.objects.exists()


def test_a_beat_racing_the_consumers_own_stop_leaves_it_stopped(db: None) -> None:
    worker, row = _consumer("stopping")
    worker.stop()  # SIGTERM: its last write records it stopped while a beat is under way
    WorkerModel.objects.filter(pk=row.pk).update(state=WorkerState.STOPPED)

    Heartbeat(worker).tick()

    assert WorkerModel.objects.get(pk=row.pk).state == WorkerState.STOPPED


@pytest.mark.slow
@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="a paused SQLite consumer holds the database's one write lock: nobody can rescue",
)
def test_a_consumer_paused_past_the_timeout_runs_none_of_the_batch_taken_from_it(
    start_consumer: Callable[..., Consumer],
    figure: Callable[..., None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "runs.log"
    log.touch()
    monkeypatch.setenv("FIREFLY_TEST_RUN_LOG", str(log))
    rounds, per_side = 3, 300
    taken_over = 0
    for round_number in range(rounds):
        # Fast tasks, so that the paused one sits in a group with unstarted tasks after it.
        before = tasks.record_run.schedule_many([()] * per_side)
        (stopper,) = tasks.record_run.schedule_many([((True,), {})])
        after = tasks.record_run.schedule_many([()] * per_side)
        ids = [row.pk for row in [*before, stopper, *after]]
        # No claim sent ahead: its thread could be stopped between a claim and its commit,
        # and a claim that has not committed is no one's to take over (its rows stay locked
        # until the consumer resumes; docs/operations.md, "Claims sent ahead").
        paused = start_consumer(**FAST, FIREFLY_CLAIM_AHEAD=False)
        line = f"{stopper.pk} {paused.pid} 1\n"

        def logged(line: str = line) -> bool:
            return line in log.read_text()

        wait_until(logged, timeout=60)
        paused_row = WorkerModel.objects.get(pid=paused.pid)
        rescuer = start_consumer(**FAST)
        done = TaskModel.objects.filter(pk__in=ids, status=TaskStatus.COMPLETED)
        total = len(ids)

        def all_done(done: QuerySet[TaskModel] = done, total: int = total) -> bool:
            return done.count() == total

        wait_until(all_done, timeout=120)
        paused_row.refresh_from_db()
        assert paused_row.state == WorkerState.DEAD
        resumed_at = len(log.read_text())
        paused.signal(signal.SIGCONT)

        def running_again(pk: int = paused_row.pk) -> bool:
            return WorkerModel.objects.get(pk=pk).state == WorkerState.RUNNING

        wait_until(running_again, timeout=30)
        paused.signal(signal.SIGTERM)
        rescuer.signal(signal.SIGTERM)
        assert paused.wait() == 0
        assert rescuer.wait() == 0

        # Back from its pause, it ran nothing of what it held.
        since = log.read_text()[resumed_at:].splitlines()
        assert [line for line in since if line.split()[1] == str(paused.pid)] == []
        runs = dict(
            Execution.objects.filter(task_id__in=ids)
            .values_list("task_id")
            .annotate(n=Count("id"))
            .values_list("task_id", "n")
        )
        assert runs == dict.fromkeys(ids, 1), f"round {round_number}"  # committed once each
        taken_over += TaskModel.objects.filter(pk__in=ids, attempt__gt=1).count()
    figure(rounds=rounds, tasks_per_round=len(ids), taken_over_from_paused=taken_over)


def test_each_heartbeat_reports_what_the_threads_execute(
    start_consumer: Callable[..., Consumer],
) -> None:
    slow = tasks.sleep_for.schedule(3.0)
    consumer = start_consumer("--burst", **FAST)
    expected = {"id": slow.pk, "name": tasks.sleep_for.name, "queue": "default"}

    def reported() -> bool:
        snapshots = WorkerModel.objects.values_list("executing", flat=True)
        return any(
            {key: task.get(key) for key in expected} == expected
            for snapshot in snapshots
            for task in snapshot or []
        )

    wait_until(reported, timeout=30)
    (snapshot,) = WorkerModel.objects.values_list("executing", flat=True)
    assert snapshot is not None
    (task,) = snapshot
    started = datetime.datetime.fromisoformat(task["started"])
    claimed = TaskModel.objects.get(pk=slow.pk).started
    assert claimed is not None and claimed <= started <= timezone.now()
    assert consumer.wait(30) == 0
    assert TaskModel.objects.get(pk=slow.pk).status == TaskStatus.COMPLETED
    assert WorkerModel.objects.get().executing == []  # stopped: executes nothing
