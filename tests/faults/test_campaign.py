"""The fault campaign, once per database server of the suite's own.

Four waves of tasks (thousands in all) are drained by several real consumer processes while
the server restarts cleanly, restarts at once (PostgreSQL's immediate shutdown), is killed
with every backend (kill -9) and stays down longer than ``FIREFLY_WORKER_TIMEOUT``, while
consumers are killed -9, frozen with SIGSTOP past the timeout and continued, and killed by
their own tasks. A consumer that dies is replaced, as a process manager would.

Every task records its start in a file outside the database (tests/faults/tasks.py), so what
the database says about an attempt can be checked against what really ran. The tests below
are what must hold whatever happened; each prints nothing but fails on its own.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.db.models import Count, Sum

from firefly_tasks.conf import settings as firefly_settings
from firefly_tasks.models import (
    FINISHED_STATUSES,
    AttemptOutcome,
    TaskAttempt,
    TaskModel,
    TaskRollup,
    TaskStatus,
    WorkerModel,
    WorkerState,
)
from tests.faults import tasks
from tests.faults.consumers import Consumer, ConsumerPool
from tests.faults.servers import DatabaseServer
from tests.testapp.models import Execution, Note

pytestmark = pytest.mark.slow

WORKER_TIMEOUT = 3.0
TIMING = {"FIREFLY_HEARTBEAT_INTERVAL": 0.5, "FIREFLY_WORKER_TIMEOUT": WORKER_TIMEOUT}
# Consumers' logs, with times, to read beside the campaign's journal when a test fails.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"timed": {"format": "%(created).3f %(process)d %(threadName)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "timed"}},
    "loggers": {"firefly_tasks": {"handlers": ["console"], "level": "WARNING"}},
}
CONSUMERS = 4
CONCURRENCY = 2
# Tasks per wave by kind; the crashing ones are added to some waves.
MIXED = {"fast": 400, "slow": 240, "non_atomic": 160}
# Only tasks that share group commits: a consumer frozen among them is frozen between
# tasks or inside a group, not in a task that then looks slow and hands its batch back.
GROUPED = {"fast": 2000}
SLOW_SECONDS = 0.02  # run alone, each in its own transaction
NON_ATOMIC_SECONDS = 0.01
# A fault strikes once this share of its wave has finished: with work in hand, not idle.
FAULT_AT = 0.25
# Consumers' and the rescuer's clocks are one host's: this covers the gap between a
# consumer's look at its claim and the start of the task.
SLACK = 0.5
# The drain fails if no task finishes for this long (the longest quiet spell expected is a
# worker timeout plus a reconnection backoff), or if it lasts longer than DRAIN_TIMEOUT.
STALL_TIMEOUT = 60.0
DRAIN_TIMEOUT = 300.0

KIND_TASKS = {
    "fast": tasks.note_marker,
    "slow": tasks.note_marker_slowly,
    "non_atomic": tasks.record_execution_slowly,
    "crash_once": tasks.kill_consumer_once,
    "poison": tasks.kill_consumer_always,
}
ATOMIC_KINDS = ("fast", "slow", "crash_once", "poison")
# Outcomes of attempts ended by another consumer's rescue: "lost" is charged to the task
# (FIREFLY_MAX_LOST_ATTEMPTS), "released" is not.
CHARGED = "lost"
RECOVERED = (CHARGED, "released")


def _call(kind: str, marker: str) -> tuple[Any, ...]:
    if kind == "slow":
        return (marker, SLOW_SECONDS)
    if kind == "non_atomic":
        return (NON_ATOMIC_SECONDS,)
    if kind == "poison":
        return ()
    return (marker,)


class Campaign:
    """Schedules the waves, strikes the faults, and keeps what the tests check against."""

    def __init__(self, server: DatabaseServer, pool: ConsumerPool, runs: Path) -> None:
        self.server = server
        self.pool = pool
        self.runs_folder = runs
        self.rng = random.Random(server.test_db)
        self.kinds: dict[int, str] = {}
        self.markers: dict[int, str] = {}
        self.stops: Counter[str] = Counter()
        self.outages: list[float] = []
        self.waves = 0
        self.paused_holding = 0
        self.held_at_outage = 0
        self.drain_error = ""
        self.seconds = 0.0
        self.runs: list[tasks.Run] = []

    # Waiting -------------------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait for ``predicate`` (the database may be down meanwhile), replacing dead
        consumers as it goes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pool.supervise()
            try:
                if predicate():
                    return
            except DatabaseError:
                with contextlib.suppress(DatabaseError):
                    connection.close()
            time.sleep(0.05)
        raise AssertionError(f"{self.server.test_db}: {what}: not within {timeout}s")

    def note(self, event: str) -> None:
        """Journal what the campaign did, with the time, beside the consumers' logs."""
        with (self.runs_folder / "campaign.journal").open("a") as journal:
            journal.write(f"{time.time():.3f} {event}\n")

    def finished(self) -> int:
        return TaskModel.objects.filter(status__in=FINISHED_STATUSES).count()

    def registered(self) -> bool:
        """Whether every live consumer has registered its worker row."""
        pids = {c.pid for c in self.pool.alive()}
        return set(WorkerModel.objects.filter(pid__in=pids).values_list("pid", flat=True)) == pids

    # Work ----------------------------------------------------------------------------------

    def wave(self, mix: dict[str, int], *, crash_once: int = 0, poison: int = 0) -> None:
        """Schedule one wave, interleaved in blocks; wait until a quarter of it finished."""
        self.waves += 1
        number = self.waves
        calls = [(kind, i) for kind, n in mix.items() for i in range(n)]
        blocks = [calls[i : i + 10] for i in range(0, len(calls), 10)]
        self.rng.shuffle(blocks)
        for kind, n in (("crash_once", crash_once), ("poison", poison)):
            for i in range(n):
                # Past the first quarter, inside a block of innocent tasks' batch.
                blocks.insert(self.rng.randrange(len(blocks) // 3, len(blocks)), [(kind, i)])
        before = self.finished()
        ordered = [call for block in blocks for call in block]
        for kind, group in itertools.groupby(ordered, key=lambda call: call[0]):
            markers = [f"{kind}-{number}-{i}" for _, i in group]
            rows = KIND_TASKS[kind].schedule_many([_call(kind, m) for m in markers])
            for row, marker in zip(rows, markers, strict=True):
                self.kinds[row.pk] = kind
                self.markers[row.pk] = marker
        self.note(f"wave {number} scheduled: {len(ordered)} tasks")
        target = before + FAULT_AT * len(ordered)
        self.wait_until(lambda: self.finished() >= target, 120, "a quarter of the wave done")

    def busiest(self, at_least: int, only: str = "") -> tuple[Consumer, int] | None:
        """The live consumer holding the most running tasks, if it holds ``at_least``
        (and, with ``only``, tasks of that name only)."""
        alive = {c.pid: c for c in self.pool.alive()}
        held: Counter[int] = Counter()
        others: set[int] = set()
        for pid, name in TaskModel.objects.filter(
            status=TaskStatus.RUNNING, worker__pid__in=alive
        ).values_list("worker__pid", "func_name"):
            held[pid] += 1
            if only and name != only:
                others.add(pid)
        candidates = [(n, pid) for pid, n in held.items() if pid not in others]
        n, pid = max(candidates, default=(0, 0))
        return (alive[pid], n) if n >= at_least else None

    def holding(self) -> int:
        """How many live consumers hold running tasks."""
        pids = [c.pid for c in self.pool.alive()]
        running = TaskModel.objects.filter(status=TaskStatus.RUNNING, worker__pid__in=pids)
        return running.values("worker_id").distinct().count()

    def held_by(self, consumer: Consumer) -> int:
        return TaskModel.objects.filter(status=TaskStatus.RUNNING, worker__pid=consumer.pid).count()

    # Faults --------------------------------------------------------------------------------

    def busy_consumer(self, at_least: int, only: str = "") -> Consumer:
        """Wait for a live consumer holding ``at_least`` running tasks; return it."""
        found: list[Consumer] = []

        def busy() -> bool:
            pick = self.busiest(at_least, only)
            if pick:
                found.append(pick[0])
            return pick is not None

        self.wait_until(busy, 30, f"a consumer holding {at_least} task(s)")
        return found[-1]

    def kill_busy_consumer(self) -> None:
        victim = self.busy_consumer(at_least=1)
        self.note(f"kill {victim.pid}")
        self.pool.kill(victim)

    def restart_server(self, how: str, down_for: float = 0.0, *, kill_one: bool = False) -> None:
        """Stop the server as ``how`` says, keep it down ``down_for`` seconds, start it again.
        With ``kill_one``, the server stops while two consumers or more hold running tasks,
        and the one holding most is killed -9 a second into the outage."""
        # Consumers that start while it is down would fail to register: let them first.
        self.wait_until(self.registered, 60, "every consumer registered")
        victim = None
        if kill_one:
            self.wait_until(lambda: self.holding() >= 2, 60, "two consumers holding tasks")
            self.held_at_outage = TaskModel.objects.filter(status=TaskStatus.RUNNING).count()
            victim = self.busy_consumer(at_least=1)
        with contextlib.suppress(DatabaseError):
            connection.close()
        began = time.monotonic()
        self.note(f"server {how} stop")
        self.server.stop(how)
        self.stops[how] += 1
        if victim is not None:
            time.sleep(1.0)
            self.note(f"kill {victim.pid}")
            self.pool.kill(victim)
        time.sleep(max(0.0, down_for - (time.monotonic() - began)))
        self.server.start()
        self.outages.append(time.monotonic() - began)
        self.note(f"server started after {self.outages[-1]:.2f}s")

    def pause_busy_consumer(self, seconds: float) -> None:
        """SIGSTOP a consumer holding a claimed batch of grouped tasks for ``seconds``, then
        SIGCONT it. (Frozen inside a task that runs alone, the task would look slow when it
        goes on, and a slow task hands the rest of its batch back anyway.)"""
        grouped = tasks.note_marker.name
        for _ in range(100):
            consumer = self.busy_consumer(at_least=2, only=grouped)
            paused_at = self.pool.pause(consumer)
            # Frozen: what it holds now, it holds until it is declared dead.
            held = self.held_by(consumer)
            if held >= 2 and self.busiest(2, only=grouped) is not None:
                break
            self.pool.resume(consumer, paused_at)
            consumer.paused = None
        self.paused_holding = held
        self.note(f"paused {consumer.pid} holding {held}")
        self.wait_until(lambda: time.time() - paused_at >= seconds, seconds * 10, "the pause")
        self.pool.resume(consumer, paused_at)
        self.note(f"continued {consumer.pid}")

    def drain(self) -> None:
        """Wait until no task waits or runs; note (for the tests) a stall or a timeout."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        progress = (-1, time.monotonic())
        while time.monotonic() < deadline:
            self.pool.supervise()
            try:
                finished = self.finished()
                if finished == len(self.kinds):
                    return
            except DatabaseError:
                with contextlib.suppress(DatabaseError):
                    connection.close()
                finished = progress[0]
            if finished != progress[0]:
                progress = (finished, time.monotonic())
            elif time.monotonic() - progress[1] > STALL_TIMEOUT:
                break
            time.sleep(0.1)
        states = dict(TaskModel.objects.values_list("status").annotate(n=Count("id")))
        self.drain_error = f"drain stalled or timed out at {states}"

    def run(self) -> None:
        began = time.monotonic()
        self.pool.supervise()
        self.wait_until(self.registered, 60, "the consumers registered")
        timeout = WORKER_TIMEOUT
        # A short crash: PostgreSQL's immediate shutdown, or kill -9 where there is none.
        short = "immediate" if "immediate" in self.server.stops else "kill"

        self.wave(MIXED, crash_once=1)
        self.restart_server("fast")

        self.wave(MIXED, poison=1)
        self.kill_busy_consumer()
        self.restart_server(short)

        self.wave(GROUPED)
        self.pause_busy_consumer(2 * timeout)

        self.wave(MIXED, crash_once=2, poison=1)
        self.restart_server("kill", down_for=2 * timeout, kill_one=True)

        self.drain()
        self.pool.stop_all()
        self.seconds = time.monotonic() - began
        self.runs = tasks.read_runs(self.runs_folder)


@pytest.fixture(scope="module")
def campaign(
    fault_server: DatabaseServer, fault_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Campaign]:
    folder = tmp_path_factory.mktemp(f"campaign-{fault_server.test_db}")
    environment = ConsumerPool.child_environment(
        {**fault_server.environment(fault_database), tasks.RUNS_ENV: str(folder)},
        {**TIMING, "FIREFLY_TASK_MODULES": [tasks.__name__], "LOGGING": LOGGING},
    )
    pool = ConsumerPool(environment, folder, CONSUMERS, ["--concurrency", str(CONCURRENCY)])
    try:
        run = Campaign(fault_server, pool, folder)
        run.run()
        yield run
    finally:
        pool.destroy()


# What the database says, beside what ran ---------------------------------------------------


def runs_of(campaign: Campaign) -> dict[tuple[int, int], list[tasks.Run]]:
    runs: dict[tuple[int, int], list[tasks.Run]] = defaultdict(list)
    for run in campaign.runs:
        runs[run.task_id, run.attempt].append(run)
    return runs


def recovered_attempts(*outcomes: str) -> list[tuple[int, int, float, int | None]]:
    """Attempts another process ended because their worker fell silent: (task, attempt
    number, when, the silent worker's PID). ``lost`` ones were charged to the task;
    ``released`` ones (where the engine has that outcome) were not."""
    pids = dict(WorkerModel.objects.values_list("pk", "pid"))
    return [
        (task_id, number, finished.timestamp(), pids.get(worker_id))
        for task_id, number, finished, worker_id in TaskAttempt.objects.filter(
            outcome__in=outcomes or RECOVERED
        ).values_list("task_id", "number", "finished", "worker_id")
    ]


def wrong_outcomes(campaign: Campaign) -> dict[int, tuple[str, str, str]]:
    """Tasks that did not end as their kind must: completed, or failed as poison."""
    found = {
        pk: (status, error)
        for pk, status, error in TaskModel.objects.values_list("pk", "status", "error")
    }
    wrong = {}
    for pk, kind in campaign.kinds.items():
        status, error = found.get(pk, ("missing", ""))
        if kind == "poison":
            ok = status == TaskStatus.FAILED and error.startswith("PoisonTask")
        else:
            ok = status == TaskStatus.COMPLETED
        if not ok:
            wrong[pk] = (kind, status, error[:60])
    return wrong


def atomic_writes_not_once(campaign: Campaign) -> dict[str, tuple[int, int]]:
    """Markers whose note count is not one for a completed atomic task, zero otherwise:
    {marker: (notes, expected)}."""
    completed = set(
        TaskModel.objects.filter(status=TaskStatus.COMPLETED).values_list("pk", flat=True)
    )
    notes = Counter(Note.objects.values_list("text", flat=True))
    wrong = {}
    for pk, kind in campaign.kinds.items():
        if kind not in ATOMIC_KINDS:
            continue
        marker = campaign.markers[pk]
        expected = 1 if pk in completed else 0
        written = notes.pop(marker, 0)
        if written != expected:
            wrong[marker] = (written, expected)
    wrong.update({marker: (n, 0) for marker, n in notes.items()})  # no task wrote these
    return wrong


def lost_without_a_run(campaign: Campaign) -> list[tuple[int, int]]:
    """Attempts charged as lost though they never started before they were declared lost."""
    runs = runs_of(campaign)
    return [
        (task_id, number)
        for task_id, number, declared, _ in recovered_attempts(CHARGED)
        if not any(run.at <= declared + SLACK for run in runs.get((task_id, number), []))
    ]


def started_after_recovery(campaign: Campaign) -> list[tuple[int, int, float]]:
    """Runs that began after their attempt had been recovered and handed to another:
    (task, attempt, seconds late)."""
    runs = runs_of(campaign)
    continued = {c.pid: c.paused[1] for c in campaign.pool.consumers if c.paused}
    late = []
    for task_id, number, declared, _ in recovered_attempts():
        for run in runs.get((task_id, number), []):
            if run.at <= declared + SLACK:
                continue
            # Frozen between its last check and the task's start: the one window the design
            # leaves (docs/guarantees.md); the task starts as the consumer continues.
            resumed = continued.get(run.pid)
            if resumed is not None and resumed - SLACK <= run.at <= resumed + SLACK:
                continue
            late.append((task_id, number, round(run.at - declared, 2)))
    return late


def live_workers_declared_dead(campaign: Campaign) -> list[tuple[int, int]]:
    """Recovered attempts of consumers that were alive and running at the time: (task, PID).

    A consumer is dead from its kill -9 (by the campaign, or by its own task: the time that
    task recorded its start), or frozen from its SIGSTOP to its SIGCONT."""
    died = {c.pid: c.killed_at for c in campaign.pool.consumers if c.killed_at}
    for run in campaign.runs:
        if campaign.kinds.get(run.task_id) in ("crash_once", "poison"):
            died[run.pid] = max(died.get(run.pid, 0.0), run.at)
    consumers = {c.pid: c for c in campaign.pool.consumers}
    wrong = []
    for task_id, _, declared, pid in recovered_attempts():
        consumer = consumers.get(pid) if pid is not None else None
        if consumer is None:
            wrong.append((task_id, pid or 0))
            continue
        if consumer.pid in died and declared >= died[consumer.pid] - SLACK:
            continue
        if consumer.paused and consumer.paused[0] <= declared <= consumer.paused[1] + SLACK:
            continue
        wrong.append((task_id, consumer.pid))
    return wrong


def revived_while_running(campaign: Campaign) -> list[int]:
    """Consumers never frozen that found themselves declared dead (their log says so)."""
    return [
        c.pid
        for c in campaign.pool.consumers
        if not c.paused and "marked dead while alive" in c.output()
    ]


def poison_not_charged_as_configured(campaign: Campaign) -> dict[int, tuple[int, int]]:
    """Poison tasks not failed after exactly ``FIREFLY_MAX_LOST_ATTEMPTS + 1`` charged
    losses, each a run of its own: {task: (runs, charged losses)}. (A first crash among
    other tasks may be left uncharged: nothing proved which task caused it.)"""
    runs = Counter(run.task_id for run in campaign.runs)
    lost = Counter(task_id for task_id, *_ in recovered_attempts(CHARGED))
    expected = firefly_settings.MAX_LOST_ATTEMPTS + 1
    return {
        pk: (runs[pk], lost[pk])
        for pk, kind in campaign.kinds.items()
        if kind == "poison" and not (lost[pk] == expected <= runs[pk])
    }


def unexpected_exits(campaign: Campaign) -> list[tuple[int, str, int | None]]:
    """Consumers that ended other than by a SIGKILL or, at the end, cleanly on SIGTERM."""
    return [
        (c.pid, c.fate, c.returncode)
        for c in campaign.pool.consumers
        if c.fate in ("exited", "hung") or (c.fate == "stopped" and c.returncode != 0)
    ]


# The specification ---------------------------------------------------------------------------


def test_every_task_ends_as_scheduled_whatever_failed(
    campaign: Campaign, figure: Callable[..., None]
) -> None:
    runs = Counter(run.task_id for run in campaign.runs)
    attempts = Counter(TaskAttempt.objects.values_list("outcome", flat=True))
    kinds = Counter(campaign.kinds.values())
    figure(
        scheduled=len(campaign.kinds),
        completed=TaskModel.objects.filter(status=TaskStatus.COMPLETED).count(),
        failed=TaskModel.objects.filter(status=TaskStatus.FAILED).count(),
        poison_scheduled=kinds["poison"],
        crash_once_scheduled=kinds["crash_once"],
        runs=sum(runs.values()),
        ran_more_than_once=sum(n > 1 for n in runs.values()),
        lost_attempts=attempts[CHARGED],
        released_attempts=attempts["released"],
        interrupted_attempts=attempts[AttemptOutcome.INTERRUPTED],
        consumers_started=len(campaign.pool.consumers),
        consumers_killed=sum(c.fate == "killed" for c in campaign.pool.consumers),
        consumers_killed_by_tasks=sum(c.fate == "crashed" for c in campaign.pool.consumers),
        paused_holding=campaign.paused_holding,
        held_at_long_outage=campaign.held_at_outage,
        server_stops=",".join(f"{how}={n}" for how, n in sorted(campaign.stops.items())),
        longest_outage_s=max(campaign.outages, default=0.0),
        worker_timeout_s=WORKER_TIMEOUT,
        wrong_outcomes=len(wrong_outcomes(campaign)),
        writes_not_once=len(atomic_writes_not_once(campaign)),
        lost_without_run=len(lost_without_a_run(campaign)),
        started_after_recovery=len(started_after_recovery(campaign)),
        live_declared_dead=len(live_workers_declared_dead(campaign)),
        campaign_s=campaign.seconds,
    )
    assert TaskModel.objects.count() == len(campaign.kinds)  # nothing lost, nothing added
    assert wrong_outcomes(campaign) == {}


def test_nothing_is_left_running_or_waiting(campaign: Campaign) -> None:
    assert campaign.drain_error == ""
    assert not TaskModel.objects.exclude(status__in=FINISHED_STATUSES).exists()
    live = WorkerModel.objects.filter(state__in=(WorkerState.RUNNING, WorkerState.STOPPING))
    assert list(live.values_list("pid", "state")) == []


def test_atomic_tasks_commit_their_write_exactly_once_with_their_completion(
    campaign: Campaign,
) -> None:
    assert atomic_writes_not_once(campaign) == {}


def test_non_atomic_tasks_write_once_in_the_attempt_that_completed(campaign: Campaign) -> None:
    completed = dict(
        TaskModel.objects.filter(
            status=TaskStatus.COMPLETED, func_name=tasks.record_execution_slowly.name
        ).values_list("pk", "attempt")
    )
    writes = Counter(Execution.objects.values_list("task_id", "attempt"))
    wrong = {
        pk: writes[pk, attempt] for pk, attempt in completed.items() if writes[pk, attempt] != 1
    }
    assert wrong == {}


def test_only_attempts_that_started_are_charged_as_lost(campaign: Campaign) -> None:
    assert lost_without_a_run(campaign) == []


def test_poison_fails_after_the_configured_number_of_its_own_crashes(campaign: Campaign) -> None:
    assert poison_not_charged_as_configured(campaign) == {}


def test_no_task_starts_after_its_attempt_was_handed_to_another_consumer(
    campaign: Campaign,
) -> None:
    assert started_after_recovery(campaign) == []


def test_each_attempt_runs_at_most_once(campaign: Campaign) -> None:
    twice = {key: len(runs) for key, runs in runs_of(campaign).items() if len(runs) > 1}
    assert twice == {}


def test_consumers_that_kept_running_are_never_declared_dead(campaign: Campaign) -> None:
    assert live_workers_declared_dead(campaign) == []
    assert revived_while_running(campaign) == []


def test_consumers_end_only_when_killed_or_told_to_stop(campaign: Campaign) -> None:
    assert unexpected_exits(campaign) == []


def test_the_rollups_count_every_finished_attempt_exactly_once(campaign: Campaign) -> None:
    """Whatever was killed, paused or cut off mid-group, the per-minute rollups were written in
    the transactions that recorded the outcomes: they add up to the task table exactly."""
    rollups = TaskRollup.objects.values("func_name").annotate(
        completed=Sum("completed"), failed=Sum("failed") + Sum("retried")
    )
    counted = {(r["func_name"], "completed"): r["completed"] for r in rollups}
    counted.update({(r["func_name"], "failed"): r["failed"] for r in rollups})
    completed = TaskModel.objects.filter(status=TaskStatus.COMPLETED).values("func_name")
    failed = TaskAttempt.objects.filter(outcome=AttemptOutcome.FAILED).values("task__func_name")
    expected = {(r["func_name"], "completed"): r["n"] for r in completed.annotate(n=Count("pk"))}
    expected.update(
        {(r["task__func_name"], "failed"): r["n"] for r in failed.annotate(n=Count("pk"))}
    )
    assert {k: v for k, v in counted.items() if v} == expected
