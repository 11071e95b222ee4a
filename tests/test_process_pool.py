"""``consume_tasks --pool process``: each slot's tasks run in a child process, which is killed
and replaced past a task's timeout and grace, or when it was cancelled and did not stop; a child
that dies charges only its own task. Real consumers and children, every database."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command

from firefly_tasks import deadlines
from firefly_tasks import pool as pool_module
from firefly_tasks.alarms import Alarms
from firefly_tasks.board import SIZE, Board
from firefly_tasks.child_runner import ChildRunner
from firefly_tasks.exceptions import TaskTimeout
from firefly_tasks.liveness import SharedLiveness
from firefly_tasks.models import TaskModel, TaskStatus, WorkerModel
from firefly_tasks.pool import ProcessPool
from tests.conftest import Consumer, finished, outcomes, wait_until
from tests.testapp import children, tasks
from tests.testapp.models import Note

pytestmark = pytest.mark.slow

# A child starts in well under a second here; a timeout of 1 s fires in about that: ten
# times as long, and more for a loaded machine.
FINISHED_WITHIN = 60
POOL = ("--pool", "process", "--concurrency", "1")


def pids() -> list[int]:
    return [
        int(text.split()[1]) for text in Note.objects.order_by("pk").values_list("text", flat=True)
    ]


def test_a_task_blocked_in_c_past_its_timeout_is_stopped_in_its_child_and_the_next_runs(
    start_consumer: Callable[..., Consumer],
) -> None:
    sleeping = tasks.sleep_in_c.schedule(60)  # timeout=1: SIGALRM interrupts the sleep
    after = tasks.add.schedule(1, 2)
    consumer = start_consumer(*POOL)

    wait_until(finished(sleeping, after), timeout=FINISHED_WITHIN)

    sleeping.refresh_from_db()
    after.refresh_from_db()
    assert (sleeping.status, outcomes(sleeping)) == (TaskStatus.FAILED, ["timed_out"])
    assert sleeping.error == "TaskTimeout: the attempt ran past its timeout of 1 s"
    assert "time.sleep" in sleeping.traceback  # stopped where it was blocked
    assert (after.status, after.returned) == (TaskStatus.COMPLETED, 3)
    assert consumer.process.poll() is None


def test_a_child_that_ignores_its_timeout_is_killed_after_the_grace_and_replaced(
    start_consumer: Callable[..., Consumer],
) -> None:
    before = tasks.note_pid.schedule()  # in the first child, which then runs the next
    stubborn = tasks.sleep_through_timeouts.schedule(600)
    start_consumer(*POOL, FIREFLY_TIMEOUT_GRACE=1)
    wait_until(finished(before), timeout=FINISHED_WITHIN)
    after = tasks.note_pid.schedule()

    wait_until(finished(stubborn, after), timeout=FINISHED_WITHIN)

    stubborn.refresh_from_db()
    assert (stubborn.status, outcomes(stubborn)) == (TaskStatus.FAILED, ["timed_out"])
    assert stubborn.error.startswith("TaskTimeout: the attempt ran past its timeout of 1 s")
    assert stubborn.error.endswith("its pool child was killed")
    first, second = pids()
    assert first != second  # the killed child was replaced


def test_a_child_killed_by_sigkill_charges_its_task_lost_once_and_the_rest_run(
    start_consumer: Callable[..., Consumer],
) -> None:
    victim = tasks.note_pid_then_sleep.schedule(600)
    others = [tasks.add.schedule(i, i) for i in range(5)]
    start_consumer(*POOL)
    wait_until(lambda: Note.objects.exists(), timeout=FINISHED_WITHIN)
    (child,) = pids()

    os.kill(child, signal.SIGKILL)

    wait_until(lambda: outcomes(victim) == ["lost"], timeout=FINISHED_WITHIN)
    victim.refresh_from_db()
    assert victim.lost_attempts == 1 and "pool child running it died" in victim.error
    assert "SIGKILL" in victim.error
    wait_until(finished(*others), timeout=FINISHED_WITHIN)
    assert [o.status for o in TaskModel.objects.filter(pk__in=[o.pk for o in others])] == [
        TaskStatus.COMPLETED
    ] * 5
    # The victim runs again (alone), in a new child.
    wait_until(lambda: len(pids()) == 2, timeout=FINISHED_WITHIN)
    assert pids()[1] != child
    TaskModel.objects.filter(pk=victim.pk).cancel(running=True)


def test_max_tasks_per_child_recycles_children(start_consumer: Callable[..., Consumer]) -> None:
    rows = tasks.note_pid.schedule_many([((), {})] * 100)
    consumer = start_consumer(*POOL, "--max-tasks-per-child", "10", "--burst")

    assert consumer.wait(FINISHED_WITHIN * 2) == 0, consumer.output()

    assert (
        TaskModel.objects.filter(pk__in=[r.pk for r in rows], status=TaskStatus.COMPLETED).count()
        == 100
    )
    seen = pids()
    assert len(seen) == 100 and len(set(seen)) == 10
    assert all(seen.count(pid) == 10 for pid in set(seen))


def test_cancelling_a_running_task_stops_it_in_its_child(
    start_consumer: Callable[..., Consumer],
) -> None:
    sleeping = tasks.note_pid_then_sleep.schedule(600)
    start_consumer(*POOL)
    wait_until(lambda: Note.objects.exists(), timeout=FINISHED_WITHIN)

    assert TaskModel.objects.filter(pk=sleeping.pk).cancel(running=True) == 1
    after = tasks.note_pid.schedule()

    wait_until(finished(after), timeout=FINISHED_WITHIN)
    sleeping.refresh_from_db()
    assert (sleeping.status, outcomes(sleeping)) == (TaskStatus.CANCELLED, ["cancelled"])
    # SIGUSR1 stopped it: the same child ran the next task.
    first, second = pids()
    assert first == second


def test_a_child_past_its_memory_limit_is_replaced_after_its_batch(
    start_consumer: Callable[..., Consumer],
) -> None:
    for _ in range(3):
        tasks.note_pid.schedule()
    # 1 KiB: every child is past it after its first batch.
    consumer = start_consumer(*POOL, "--max-memory-per-child", "1", "--burst")

    assert consumer.wait(FINISHED_WITHIN) == 0, consumer.output()

    seen = pids()
    assert len(seen) == 3 and len(set(seen)) >= 2


def test_a_child_attaches_to_its_parents_liveness_without_resetting_it() -> None:
    cells = [0.0, 0.0]
    parent = SharedLiveness.fresh(cells)
    parent.revivals += 2
    parent.proved_at = 12.5

    child = SharedLiveness(cells)

    assert (child.revivals, child.proved_at) == (2, 12.5)
    child.proved_at = 13.0
    assert parent.proved_at == 13.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pool", "process", "--reload"], "--pool process cannot be used with --reload"),
        (["--max-tasks-per-child", "3"], "need --pool process"),
        (["--max-memory-per-child", "300000"], "need --pool process"),
    ],
)
def test_the_pool_options_refuse_what_cannot_work(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("consume_tasks", *args)


def test_the_heartbeat_reports_the_pool_and_each_childs_pid_memory_and_task(
    start_consumer: Callable[..., Consumer],
) -> None:
    sleeping = tasks.note_pid_then_sleep.schedule(600)
    consumer = start_consumer(*POOL, FIREFLY_HEARTBEAT_INTERVAL=0.2)
    wait_until(lambda: Note.objects.exists(), timeout=FINISHED_WITHIN)
    (child,) = pids()

    def reported() -> list[dict[str, object]] | None:
        worker = WorkerModel.objects.filter(pid=consumer.pid).first()
        return None if worker is None else worker.children

    wait_until(lambda: (reported() or [{}])[0].get("task") == sleeping.pk, timeout=FINISHED_WITHIN)
    worker = WorkerModel.objects.get(pid=consumer.pid)
    (entry,) = worker.children or []
    assert worker.pool == "process"
    assert (entry["slot"], entry["pid"], entry["task"]) == (0, child, sleeping.pk)
    assert isinstance(entry["memory_kib"], int) and entry["memory_kib"] > 1024
    TaskModel.objects.filter(pk=sleeping.pk).cancel(running=True)


def test_an_async_task_that_blocks_its_loop_is_killed_after_its_timeout_and_grace(
    start_consumer: Callable[..., Consumer],
) -> None:
    blocking = async_to_sync(tasks.async_blocking.schedule)(600)
    after = tasks.add.schedule(1, 1)
    start_consumer(*POOL, FIREFLY_TIMEOUT_GRACE=1)

    wait_until(finished(blocking, after), timeout=FINISHED_WITHIN)

    blocking.refresh_from_db()
    assert (blocking.status, outcomes(blocking)) == (TaskStatus.FAILED, ["timed_out"])
    assert blocking.error.endswith("its pool child was killed")
    assert TaskModel.objects.get(pk=after.pk).returned == 2


def test_a_child_dying_in_a_group_commit_charges_its_task_and_reruns_the_group_uncharged(
    start_consumer: Callable[..., Consumer], figure: Callable[..., None]
) -> None:
    # Fast calls share commits once the child has seen a few: call 150 kills its child in the
    # middle of a group, whose earlier members had not committed.
    calls = tasks.crash_at.schedule_many([(i, 150) for i in range(300)])
    consumer = start_consumer(*POOL, "--burst")

    assert consumer.wait(FINISHED_WITHIN) == 0, consumer.output()

    crashed = calls[150]
    ended = {row.pk: (row.status, row.lost_attempts) for row in TaskModel.objects.all()}
    assert set(ended.values()) == {(TaskStatus.COMPLETED, 0), (TaskStatus.COMPLETED, 1)}
    assert ended[crashed.pk] == (TaskStatus.COMPLETED, 1)
    assert outcomes(crashed) == ["lost", "completed"]
    interrupted = 0
    for row in calls:
        if row.pk != crashed.pk:
            assert outcomes(row) in (["completed"], ["interrupted", "completed"]), row.pk
            interrupted += outcomes(row) == ["interrupted", "completed"]
    # Each call's note committed once: the killed group's writes rolled back with it.
    notes = list(Note.objects.values_list("text", flat=True))
    assert sorted(notes) == sorted(f"crash_at {i}" for i in range(300))
    figure(interrupted=interrupted)


def test_two_children_run_every_task_once(start_consumer: Callable[..., Consumer]) -> None:
    tasks.note_pid.schedule_many([((), {})] * 200)
    consumer = start_consumer("--pool", "process", "--concurrency", "2", "--burst")

    assert consumer.wait(FINISHED_WITHIN) == 0, consumer.output()

    assert TaskModel.objects.filter(status=TaskStatus.COMPLETED).count() == 200
    assert len(pids()) == 200  # each task's note committed once
    assert len(set(pids())) == 2


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_lets_the_childs_task_finish_then_the_child_and_consumer_exit(
    start_consumer: Callable[..., Consumer],
) -> None:
    row = tasks.note_pid_then_sleep.schedule(2)
    consumer = start_consumer(*POOL)
    wait_until(lambda: Note.objects.exists(), timeout=FINISHED_WITHIN)
    (child,) = pids()

    consumer.signal(signal.SIGTERM)

    assert consumer.wait(FINISHED_WITHIN) == 0, consumer.output()
    assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.COMPLETED
    wait_until(lambda: not alive(child), timeout=10)


def test_a_second_sigterm_kills_the_child_and_puts_its_task_back(
    start_consumer: Callable[..., Consumer],
) -> None:
    row = tasks.note_pid_then_sleep.schedule(600)
    consumer = start_consumer(*POOL)
    wait_until(lambda: Note.objects.exists(), timeout=FINISHED_WITHIN)
    (child,) = pids()

    consumer.signal(signal.SIGTERM)
    wait_until(
        lambda: WorkerModel.objects.filter(pid=consumer.pid, state="stopping").exists(),
        timeout=FINISHED_WITHIN,
    )
    consumer.signal(signal.SIGTERM)

    assert consumer.wait(FINISHED_WITHIN) == 1, consumer.output()
    wait_until(lambda: not alive(child), timeout=10)
    row.refresh_from_db()
    assert (row.status, outcomes(row)) == (TaskStatus.CREATED, ["interrupted"])
    assert row.lost_attempts == 0


def test_a_childs_sigusr1_hands_its_runner_the_tasks_dropped_from_its_batch() -> None:
    board = Board([0.0] * SIZE)
    board.clear()
    dropped: set[int] = set()
    before = signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGUSR1)
    try:
        Alarms(board, dropped.update)
        for pk in range(100, 111):  # more than the ring holds: the last 8 are kept
            board.drop(pk)
        os.kill(os.getpid(), signal.SIGUSR1)  # this process is the child here
        wait_until(lambda: bool(dropped), timeout=10)
    finally:
        signal.signal(signal.SIGALRM, before[0])
        signal.signal(signal.SIGUSR1, before[1])

    assert dropped == set(range(103, 111))
    board.clear()
    assert board.dropped() == frozenset()


def test_a_child_runner_skips_a_task_its_parent_dropped_before_the_batch_reached_it(
    transactional_db: None,
) -> None:
    """The parent may drop a task (and signal) between sending the batch and the child's run."""
    worker = WorkerModel.objects.create(name="w", hostname="h", pid=1, queues=["default"])
    kept, dropped = tasks.add.schedule_many([(1, 2), (3, 4)])
    rows = TaskModel.objects.claim(["default"], 2, worker.pk)
    board = Board([0.0] * SIZE)
    board.clear()
    board.drop(dropped.pk)
    runner = ChildRunner(worker, board, SharedLiveness.fresh([0.0, 0.0]))

    outcomes_, not_run = runner.run(rows)

    assert outcomes_ == ["completed"]
    assert [row.pk for row in not_run] == [dropped.pk]
    assert TaskModel.objects.get(pk=kept.pk).status == TaskStatus.COMPLETED


def test_a_child_that_dies_before_running_a_task_hands_its_batch_back_and_backs_off(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "main", children.exit_at_once)
    worker = WorkerModel.objects.create(name="w", hostname="h", pid=1, queues=["default"])
    row = tasks.add.schedule(1, 2)
    pool = ProcessPool()
    child = pool.runner(worker, 0)

    outcomes_, handed_back = child.run([row])
    again = child.run([row])

    assert (outcomes_, handed_back) == ([], [row]) and again == ([], [row])
    assert len(child.pids) == 2 and child._restart_delay == 4 * pool_module.RESTART_FIRST_DELAY
    assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.CREATED  # never touched
    # Between children, nothing to stop, drop or show.
    assert child.interrupt((row.pk, 1)) is False
    child.drop(row)
    assert not child.dropped and child.executing is None
    assert pool.snapshot() == [{"slot": 0, "pid": None, "memory_kib": None, "task": None}]
    assert pool_module._describe_exit(3) == "exit code 3"
    assert pool_module._describe_exit(-9) == "killed by SIGKILL"
    assert pool_module._describe_exit(-200) == "killed by signal 200"


def test_a_childs_alarm_that_fires_as_it_is_set_still_stops_the_body() -> None:
    # This process stands for a child: its main thread runs bodies under a pool's alarms.
    board = Board([0.0] * SIZE)
    board.clear()
    before = signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGUSR1)
    try:
        deadlines.use(Alarms(board, lambda pks: None))
        stopped = 0
        for _ in range(200):
            try:
                deadlines.call(spin, [0.005], {}, 1e-6)  # fires at once
            except TaskTimeout:
                stopped += 1
    finally:
        deadlines.use(deadlines.watchdog)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before[0])
        signal.signal(signal.SIGUSR1, before[1])

    assert stopped == 200


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
