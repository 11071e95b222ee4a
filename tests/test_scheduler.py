"""Periodic schedules with real consumer processes: several consumers, one task a tick, no tick
twice and none skipped, through a kill -9; one catch-up run after every consumer was down; a
disabled schedule stops firing. Ticks are counted by the tick time stored on each task row."""

from __future__ import annotations

import datetime
import itertools
import signal
import time
from collections.abc import Callable

from firefly_tasks.clock import database_now
from firefly_tasks.models import ScheduleModel, TaskModel, WorkerModel
from tests.conftest import Consumer, wait_until

SECOND = datetime.timedelta(seconds=1)
EVERY_SECOND = {"tick": {"task": "tests.testapp.tasks.note_tick", "every": 1, "args": ["t"]}}


def consumer(start_consumer: Callable[..., Consumer], name: str) -> Consumer:
    return start_consumer(
        "--worker-name", name, "--queue", "default", FIREFLY_SCHEDULES=EVERY_SECOND
    )


def ticks_stored() -> list[datetime.datetime]:
    return list(
        TaskModel.objects.filter(schedule="tick")
        .order_by("scheduled_for")
        .values_list("scheduled_for", flat=True)
    )


def sleep_past_next_tick(offset: float = 0.002) -> None:
    """Sleep until just after the schedule's next tick (the database's clock): a kill then
    lands while consumers enqueue it."""
    row = ScheduleModel.objects.get(name="tick")
    time.sleep(max(0.0, (row.next_tick - database_now()).total_seconds() + offset))


def test_three_consumers_enqueue_one_task_a_tick_through_a_kill_9_and_stop_when_disabled(
    start_consumer: Callable[..., Consumer], figure: Callable[..., None]
) -> None:
    consumers = [consumer(start_consumer, f"c{i}") for i in range(3)]
    wait_until(lambda: len(ticks_stored()) >= 2, timeout=60)  # all started, ticking

    killed = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        sleep_past_next_tick(0.002 * (killed % 5))
        index = killed % 3
        consumers[index].kill()  # SIGKILL, perhaps inside its pass's transaction
        consumers[index] = consumer(start_consumer, f"again{killed}")
        killed += 1
        time.sleep(1.5)

    ScheduleModel.objects.filter(name="tick").update(enabled=False)  # as the admin does
    disabled_at = database_now()
    time.sleep(2.5)
    stored = ticks_stored()

    assert len(stored) == len(set(stored)), "a tick was enqueued twice"
    gaps = [b - a for a, b in itertools.pairwise(stored)]
    assert set(gaps) == {SECOND}, f"a tick was skipped: {gaps}"  # every tick, on the grid
    assert len(stored) >= 12
    assert stored[-1] <= disabled_at + SECOND  # at most the tick being enqueued then
    for running in consumers:
        running.signal(signal.SIGTERM)
    for running in consumers:
        assert running.wait(60) == 0
    figure(ticks=len(stored), consumers_killed=killed)


def test_consumers_down_for_ten_seconds_make_one_catch_up_run_not_ten(
    start_consumer: Callable[..., Consumer],
) -> None:
    first = consumer(start_consumer, "before")
    wait_until(lambda: len(ticks_stored()) >= 3, timeout=60)
    first.signal(signal.SIGTERM)
    assert first.wait(60) == 0
    before = ticks_stored()

    time.sleep(10)  # ten ticks come due with nobody to enqueue them
    restarted = database_now()
    second = consumer(start_consumer, "after")
    wait_until(lambda: len(ticks_stored()) >= len(before) + 3, timeout=60)
    second.signal(signal.SIGTERM)
    assert second.wait(60) == 0

    stored = ticks_stored()
    after = stored[len(before) :]
    assert stored[: len(before)] == before
    catch_up = after[0]  # the one run for the missed ticks: the latest of them
    assert catch_up - before[-1] >= 9 * SECOND
    assert catch_up >= restarted - SECOND
    assert [b - a for a, b in itertools.pairwise(after)] == [SECOND] * (len(after) - 1)
    assert len(stored) == len(set(stored))


def test_consumers_of_two_deploys_side_by_side_change_a_schedule_once(
    start_consumer: Callable[..., Consumer],
) -> None:
    def deployed(cron: str, name: str) -> Consumer:
        schedules = {"report": {"task": "tests.testapp.tasks.note_tick", "cron": cron}}
        return start_consumer("--worker-name", name, FIREFLY_SCHEDULES=schedules)

    def cron() -> str | None:
        return ScheduleModel.objects.filter(name="report").values_list("cron", flat=True).first()

    def synced(name: str) -> bool:
        return WorkerModel.objects.filter(name=name, schedules_since__isnull=False).exists()

    old = deployed("0 2 * * *", "old")
    wait_until(lambda: cron() == "0 2 * * *", timeout=60)
    new = deployed("0 4 * * *", "new")
    wait_until(lambda: cron() == "0 4 * * *", timeout=60)

    old.kill()  # the old release's consumer crashes and its supervisor restarts it
    restarted = deployed("0 2 * * *", "old-restarted")
    wait_until(lambda: synced("old-restarted"), timeout=60)
    time.sleep(0.5)

    assert cron() == "0 4 * * *"  # not put back
    for running in (new, restarted):
        running.signal(signal.SIGTERM)
        assert running.wait(60) == 0
