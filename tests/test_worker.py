"""Worker lifecycle under faults: real consumer processes, real databases.

kill -9, restarts, signals, severed connections and paused queues.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable

import pytest
from django.db import connection
from django.db.models import Count

from firefly_tasks.models import TaskAttempt, TaskModel, TaskStatus, WorkerModel, WorkerState
from firefly_tasks.queues import pause_queue, resume_queue
from tests.conftest import Consumer, wait_until
from tests.testapp import tasks
from tests.testapp.models import Execution, Note

pytestmark = pytest.mark.slow

# Fast liveness for the tests: heartbeats every 0.2 s, dead after 1 s of silence.
FAST = {"FIREFLY_HEARTBEAT_INTERVAL": 0.2, "FIREFLY_WORKER_TIMEOUT": 1.0}

# The consumer's lifecycle and task lines, for tests that check the order things happened in.
INFO_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"firefly_tasks": {"handlers": ["console"], "level": "INFO"}},
}


def count(status: str) -> int:
    return TaskModel.objects.filter(status=status).count()


def test_kill_9_worker_is_declared_dead_and_its_tasks_completed_elsewhere(
    start_consumer: Callable[..., Consumer], figure: Callable[..., None]
) -> None:
    rows = tasks.slow_first_attempt.schedule_many([(60,), (60,)])
    victim = start_consumer("--concurrency", "2", **FAST)
    wait_until(lambda: count(TaskStatus.RUNNING) == 2)
    victim_row = WorkerModel.objects.get(pid=victim.pid)

    victim.kill()
    killed_at = time.monotonic()
    rescuer = start_consumer(**FAST)
    # Bounded at ten times the worker timeout plus a rescuer's start, never asserted on the
    # clock: the recovery time is a figure to read, not a pass mark.
    wait_until(lambda: count(TaskStatus.COMPLETED) == 2, timeout=30)
    recovery = time.monotonic() - killed_at

    victim_row.refresh_from_db()
    assert victim_row.state == WorkerState.DEAD
    for row in rows:
        row.refresh_from_db()
        assert row.returned == 2  # the second attempt ran it
        history = list(row.attempts.order_by("number").values_list("outcome", "worker_id"))
        # Both ran side by side: nothing proves which one killed it, so neither is charged
        # (released, not lost), and each runs alone next time.
        assert history[0] == ("released", victim_row.pk)
        assert history[1][0] == "completed"
        assert history[1][1] != victim_row.pk
        assert row.retry_attempts == 0  # a release is not a retry
        assert row.lost_attempts == 0
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait() == 0
    figure(
        scheduled=len(rows),
        completed=count(TaskStatus.COMPLETED),
        released_attempts=TaskAttempt.objects.filter(outcome="released").count(),
        worker_timeout_s=FAST["FIREFLY_WORKER_TIMEOUT"],
        recovery_s=recovery,
    )


def test_consumers_drain_while_one_is_killed_and_restarted_twice(
    start_consumer: Callable[..., Consumer], figure: Callable[..., None]
) -> None:
    total = 5000
    tasks.record_execution.schedule_many([() for _ in range(total)])
    # Five processes share two cores here: allow a busy (not dead) worker a late heartbeat.
    timing = {**FAST, "FIREFLY_WORKER_TIMEOUT": 4.0}
    steady = [start_consumer(**timing) for _ in range(3)]
    victim = start_consumer(**timing)
    killed_workers = []
    for threshold in (total // 5, total // 2):

        def reached(t: int = threshold) -> bool:
            return count(TaskStatus.COMPLETED) >= t

        wait_until(reached, timeout=120)
        killed_workers.append(WorkerModel.objects.get(pid=victim.pid).pk)
        victim.kill()
        victim = start_consumer(**timing)
    wait_until(lambda: count(TaskStatus.COMPLETED) == total, timeout=240)
    # A victim killed between batches held nothing, so the drain did not wait for it to be
    # declared dead: the live consumers do so within a worker timeout (bounded at ten times).
    killed = WorkerModel.objects.filter(pk__in=killed_workers, state=WorkerState.DEAD)
    wait_until(lambda: killed.count() == 2, timeout=10 * timing["FIREFLY_WORKER_TIMEOUT"])

    for consumer in [*steady, victim]:
        assert consumer.process.poll() is None  # nobody exited on its own
        consumer.signal(signal.SIGTERM)
    for consumer in [*steady, victim]:
        assert consumer.wait() == 0

    runs = dict(
        Execution.objects.values_list("task_id").annotate(n=Count("id")).values_list("task_id", "n")
    )
    assert len(runs) == total  # nothing lost
    ran_twice = {task_id for task_id, n in runs.items() if n > 1}
    # Taken back from a dead worker: lost if it ran alone, released if nothing shows it started.
    recovered = TaskAttempt.objects.filter(outcome__in=("lost", "released"))
    lost = set(recovered.values_list("task_id", flat=True))
    lost_by_victims = set(
        recovered.filter(worker_id__in=killed_workers).values_list("task_id", flat=True)
    )
    assert lost == lost_by_victims  # only the killed process lost tasks
    assert ran_twice <= lost_by_victims  # only its tasks ran more than once
    figure(
        scheduled=total,
        completed=count(TaskStatus.COMPLETED),
        ran_more_than_once=len(ran_twice),
        lost=total - len(runs),
        recovered_from_killed=len(lost_by_victims),
    )


def test_sigterm_lets_the_running_task_finish_then_exits_zero(
    start_consumer: Callable[..., Consumer],
) -> None:
    row = tasks.sleep_then_note.schedule(2, "finished")
    consumer = start_consumer(**FAST, LOGGING=INFO_LOGGING)
    wait_until(lambda: Execution.objects.filter(task_id=row.pk).exists())

    consumer.signal(signal.SIGTERM)
    assert consumer.wait(20) == 0  # ten times the task's remaining two seconds

    # The order of the consumer's own log, not the clock: the signal came while the task ran,
    # the task finished, then the consumer stopped.
    output = consumer.output()
    events = [
        output.index("worker stopping"),
        output.index(f"task completed id={row.pk} "),
        output.index("worker stopped"),
    ]
    assert events == sorted(events), output

    row.refresh_from_db()
    assert row.status == TaskStatus.COMPLETED
    assert Note.objects.get().text == "finished"
    assert WorkerModel.objects.get(pid=consumer.pid).state == WorkerState.STOPPED


def test_second_signal_returns_the_running_task_to_the_queue(
    start_consumer: Callable[..., Consumer],
) -> None:
    row = tasks.sleep_then_note.schedule(60, "never")
    consumer = start_consumer(**FAST)
    wait_until(lambda: Execution.objects.filter(task_id=row.pk).exists())

    consumer.signal(signal.SIGTERM)
    time.sleep(0.3)
    consumer.signal(signal.SIGINT)
    assert consumer.wait(10) == 1

    row.refresh_from_db()
    assert row.status == TaskStatus.CREATED
    assert row.worker_id is None
    assert list(row.attempts.values_list("outcome", flat=True)) == ["interrupted"]
    assert WorkerModel.objects.get(pid=consumer.pid).state == WorkerState.STOPPED
    assert not Note.objects.exists()


def _sever_consumer_connections() -> int:
    """Terminate every other connection to the test database; return how many."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            terminated: int = cursor.fetchone()[0]
            return terminated
        cursor.execute(
            "SELECT id FROM information_schema.processlist "
            "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
        ids = [row[0] for row in cursor.fetchall()]
        for thread_id in ids:
            with contextlib.suppress(Exception):  # it may have closed meanwhile
                cursor.execute(f"KILL {int(thread_id)}")
        return len(ids)


def test_consumers_survive_severed_database_connections(
    start_consumer: Callable[..., Consumer], figure: Callable[..., None]
) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server connection to sever")
    total = 1500
    # 10 ms each, atomic: every task commits on its own, so cuts land between and inside them.
    rows = tasks.note_after.schedule_many([(0.01, f"note-{i}") for i in range(total)])
    consumers = [start_consumer("--concurrency", "2", **FAST) for _ in range(2)]
    wait_until(lambda: count(TaskStatus.COMPLETED) > 50, timeout=60)

    severed = cuts_under_load = 0
    for _ in range(6):
        if count(TaskStatus.COMPLETED) < total:
            cuts_under_load += 1
        severed += _sever_consumer_connections()
        time.sleep(0.4)
    try:
        wait_until(lambda: count(TaskStatus.COMPLETED) == total, timeout=90)
    except AssertionError:
        for consumer in consumers:
            consumer.kill()
        states = dict(TaskModel.objects.values_list("status").annotate(n=Count("id")))
        raise AssertionError(f"{states} {[c.output()[-3000:] for c in consumers]}") from None

    assert cuts_under_load >= 3  # the cuts hit consumers with work in hand, not idle ones
    assert severed > 0
    for consumer in consumers:
        assert consumer.process.poll() is None  # never exited on a transient error
        consumer.signal(signal.SIGTERM)
    for consumer in consumers:
        assert consumer.wait() == 0, consumer.output()
    # Each task's write committed exactly once, together with its completion.
    notes = dict(Note.objects.values_list("text").annotate(n=Count("id")).values_list("text", "n"))
    assert notes == {f"note-{i}": 1 for i in range(total)}
    assert (
        TaskModel.objects.filter(pk__in=[r.pk for r in rows], status="completed").count() == total
    )
    figure(
        scheduled=total,
        completed=total,
        cuts_under_load=cuts_under_load,
        connections_severed=severed,
        attempts_rerun=TaskAttempt.objects.count() - total,
    )


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has no server connection")
def test_sigterm_after_a_database_restart_records_the_stopping_state(
    start_consumer: Callable[..., Consumer],
) -> None:
    consumer = start_consumer(**FAST)
    wait_until(lambda: WorkerModel.objects.filter(pid=consumer.pid).exists())
    # As a database restart does: the connection of the consumer's main thread, idle since
    # it registered, is broken although the database is back.
    assert _sever_consumer_connections() > 0

    consumer.signal(signal.SIGTERM)

    assert consumer.wait() == 0
    assert "could not record worker state" not in consumer.output()
    assert WorkerModel.objects.get(pid=consumer.pid).state == WorkerState.STOPPED


def test_paused_queue_is_not_claimed_and_drains_once_resumed(
    start_consumer: Callable[..., Consumer],
) -> None:
    consumer = start_consumer("--queue", "default", "--queue", "other", **FAST)
    first = tasks.write_note.schedule("before the pause")
    wait_until(lambda: TaskModel.objects.get(pk=first.pk).status == TaskStatus.COMPLETED)

    pause_queue("default", by="ops", reason="maintenance")  # the consumer is running
    row = tasks.write_note.schedule("waits")
    other = tasks.write_note_other_queue.schedule("flows")

    wait_until(lambda: TaskModel.objects.get(pk=other.pk).status == TaskStatus.COMPLETED)
    time.sleep(0.5)  # several poll intervals
    row.refresh_from_db()
    assert row.status == TaskStatus.CREATED

    resume_queue("default")
    wait_until(lambda: TaskModel.objects.get(pk=row.pk).status == TaskStatus.COMPLETED)
    consumer.signal(signal.SIGTERM)
    assert consumer.wait() == 0


def test_threads_share_nothing_but_the_queue(start_consumer: Callable[..., Consumer]) -> None:
    # Guard against a thread-safety regression: many threads, one process, exactly once.
    tasks.record_execution.schedule_many([() for _ in range(400)])
    assert start_consumer("--burst", "--concurrency", "4").wait(120) == 0
    assert Execution.objects.count() == 400
    assert Execution.objects.values("task_id").distinct().count() == 400


def test_postgres_notify_wakes_an_idle_consumer_at_once(
    start_consumer: Callable[..., Consumer],
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY wake-ups are PostgreSQL's; elsewhere consumers poll")
    # Polling every hour: only a notification can start the task within the test's bound, ten
    # times the second or so a notified consumer takes even on a loaded machine.
    consumer = start_consumer(FIREFLY_CONSUMER_NAP_TIME=3600.0, FIREFLY_MAX_POLL_INTERVAL=3600.0)
    wait_until(lambda: WorkerModel.objects.filter(pid=consumer.pid).exists())
    time.sleep(1.0)  # the consumer found nothing and is napping

    row = tasks.write_note.schedule("woken")
    wait_until(lambda: TaskModel.objects.get(pk=row.pk).status == TaskStatus.COMPLETED, 10)

    consumer.signal(signal.SIGTERM)
    assert consumer.wait() == 0
