"""Enqueueing due ticks: exactly one task a tick however many connections race for it, missed
ticks, overlap, and schedules that cannot run. Real databases, real connections."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable

import pytest
from django.db import connection
from django.utils import timezone

from firefly_tasks import scheduler, ticks
from firefly_tasks.clock import database_now
from firefly_tasks.models import ScheduleModel, TaskModel, TaskStatus, WorkerModel
from firefly_tasks.scheduler import Scheduler
from firefly_tasks.testing import run_pending_tasks
from tests.testapp.models import Note

SECOND = datetime.timedelta(seconds=1)


def make_schedule(name: str = "s", **fields: object) -> ScheduleModel:
    now = database_now()
    values: dict[str, object] = {
        "func_name": "tests.testapp.tasks.note_tick",
        "every": datetime.timedelta(hours=1),
        "anchor": now - datetime.timedelta(days=1),
        "params_data": '[["tick"], {}]',
        "next_tick": now - SECOND,
    }
    values.update(fields)
    return ScheduleModel.objects.create(name=name, **values)


def test_eight_connections_racing_for_a_due_tick_store_exactly_one_task(
    transactional_db: None, figure: Callable[..., None]
) -> None:
    schedule = make_schedule()
    rounds, racers = 200, 8
    start, done = threading.Barrier(racers + 1), threading.Barrier(racers + 1)
    taken: list[tuple[int, int]] = []  # (round, schedules the racer found due)
    errors: list[BaseException] = []

    def racer() -> None:
        try:
            for round_ in range(rounds):
                start.wait(30)
                try:
                    taken.append((round_, ticks.enqueue_due()[0]))
                finally:
                    done.wait(30)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
            start.abort()
            done.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=racer) for _ in range(racers)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(1, rounds + 1):
            # A due tick again: the schedule's next tick is put back into the past.
            ScheduleModel.objects.filter(pk=schedule.pk).update(next_tick=database_now() - SECOND)
            start.wait(30)
            done.wait(30)
            assert TaskModel.objects.count() == round_, f"round {round_}"
    finally:
        for thread in threads:
            thread.join(60)
    assert errors == []
    assert TaskModel.objects.filter(schedule="s").count() == rounds
    # The race was real: in many rounds several racers found the tick due and tried.
    seen = [sum(n for r, n in taken if r == round_) for round_ in range(rounds)]
    contended = sum(1 for n in seen if n > 1)
    assert contended > 0, seen
    figure(rounds=rounds, racers=racers, tasks=rounds, contended_rounds=contended)


def test_a_tick_becomes_a_task_with_its_arguments_and_its_tick(db: None) -> None:
    schedule = make_schedule(queue="other", priority=7)
    due = schedule.next_tick

    taken, now = ticks.enqueue_due()

    assert taken == 1
    (row,) = TaskModel.objects.all()
    assert (row.func_name, row.queue, row.priority) == ("tests.testapp.tasks.note_tick", "other", 7)
    assert (row.schedule, row.params["args"]) == ("s", ("tick",))
    schedule.refresh_from_db()
    # The tick is the latest grid point at or before now (the stored tick, a second ago,
    # was off the hourly grid of the anchor: the grid wins).
    grid = ticks.cadence_of(schedule)
    latest = grid.latest_at_or_before(now)
    assert latest is not None and latest >= due - datetime.timedelta(hours=1)
    assert row.scheduled_for == latest
    assert schedule.next_tick == grid.next_after(now) > now
    assert schedule.last_tick == row.scheduled_for
    assert ticks.enqueue_due()[0] == 0  # nothing more is due

    assert run_pending_tasks() == 1
    (note,) = Note.objects.all()
    assert note.text == f"tick {row.scheduled_for.isoformat()} s"  # what the task saw


def test_missed_ticks_make_one_task_for_the_latest_of_them(db: None) -> None:
    now = database_now()
    make_schedule(
        every=SECOND, anchor=now - datetime.timedelta(minutes=5), next_tick=now - 60 * SECOND
    )

    ticks.enqueue_due()

    (row,) = TaskModel.objects.all()  # sixty ticks were missed: one run
    assert now - SECOND < row.scheduled_for <= database_now()


def test_missed_skip_drops_missed_ticks_but_not_a_tick_just_due(db: None) -> None:
    now = database_now()
    behind = make_schedule(
        "behind", every=SECOND, anchor=now - datetime.timedelta(minutes=5),
        next_tick=now - 60 * SECOND, missed="skip",
    )  # fmt: skip
    # Anchored in the future's past by less than a period: its one tick is just due.
    on_time = make_schedule(
        "on-time", anchor=now - datetime.timedelta(minutes=30), next_tick=now - SECOND,
        every=datetime.timedelta(hours=1), missed="skip",
    )  # fmt: skip
    tick = ticks.cadence_of(on_time).latest_at_or_before(now)
    assert tick is not None
    on_time.next_tick = tick
    on_time.save()

    assert ticks.enqueue_due()[0] == 2

    assert list(TaskModel.objects.values_list("schedule", flat=True)) == ["on-time"]
    behind.refresh_from_db()
    assert behind.next_tick > now and behind.last_tick is None


def test_overlap_skip_enqueues_nothing_while_the_previous_task_is_unfinished(db: None) -> None:
    schedule = make_schedule(overlap="skip")
    ticks.enqueue_due()
    assert TaskModel.objects.count() == 1

    ScheduleModel.objects.filter(pk=schedule.pk).update(next_tick=database_now() - SECOND)
    ticks.enqueue_due()
    assert TaskModel.objects.count() == 1  # the first is still waiting: skipped
    schedule.refresh_from_db()
    assert schedule.next_tick > database_now()  # and the schedule moved on

    run_pending_tasks()
    assert TaskModel.objects.get().status == TaskStatus.COMPLETED
    ScheduleModel.objects.filter(pk=schedule.pk).update(next_tick=database_now() - SECOND)
    ticks.enqueue_due()
    assert TaskModel.objects.count() == 2


def test_a_schedule_whose_task_is_gone_is_skipped_and_says_why(db: None) -> None:
    make_schedule("gone", func_name="tests.testapp.tasks.renamed_long_ago")
    make_schedule("fine")

    assert ticks.enqueue_due()[0] == 2  # the pass goes on past the broken one

    assert list(TaskModel.objects.values_list("schedule", flat=True)) == ["fine"]
    gone = ScheduleModel.objects.get(name="gone")
    assert "not a registered task" in gone.problem
    assert gone.next_tick > database_now()  # not retried in a loop
    assert ScheduleModel.objects.get(name="fine").problem == ""


def test_a_schedule_with_a_bad_time_zone_waits_and_says_why(db: None) -> None:
    make_schedule("zoned", cron="0 3 * * *", every=None, time_zone="Atlantis/Capital")

    ticks.enqueue_due()

    row = ScheduleModel.objects.get()
    assert "not a known time zone" in row.problem
    assert row.next_tick >= database_now() + ticks.RETRY_BROKEN - datetime.timedelta(minutes=1)
    assert not TaskModel.objects.exists()


def test_disabled_schedules_and_schedules_moved_on_meanwhile_do_not_fire(db: None) -> None:
    make_schedule("off", enabled=False)
    schedule = make_schedule("raced")
    now = database_now()
    (planned,) = [ticks.plan(schedule, now, set())]
    # Another process takes the tick between this one's read and its write.
    ScheduleModel.objects.filter(pk=schedule.pk).update(next_tick=now + datetime.timedelta(hours=1))

    assert ticks._enqueue([planned], "default") == []

    assert ticks.enqueue_due()[0] == 0
    assert not TaskModel.objects.exists()


def test_a_tick_disabled_after_it_was_read_does_not_fire(db: None) -> None:
    schedule = make_schedule()
    planned = ticks.plan(schedule, database_now(), set())
    ScheduleModel.objects.filter(pk=schedule.pk).update(enabled=False)

    assert ticks._enqueue([planned], "default") == []
    assert not TaskModel.objects.exists()


def test_a_pass_takes_at_most_its_limit_and_the_rest_in_the_next(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ticks, "PASS_MOST", 7)
    for i in range(10):
        make_schedule(f"s{i:02}")

    assert ticks.enqueue_due()[0] == 7
    assert ticks.enqueue_due()[0] == 3
    assert ticks.enqueue_due()[0] == 0
    names = sorted(str(name) for name in TaskModel.objects.values_list("schedule", flat=True))
    assert names == [f"s{i:02}" for i in range(10)]


def test_run_now_enqueues_a_run_outside_the_ticks(db: None) -> None:
    schedule = make_schedule(next_tick=timezone.now() + datetime.timedelta(hours=1))

    row = ticks.run_now(schedule)

    assert (row.schedule, row.scheduled_for) == ("s", None)
    schedule.refresh_from_db()
    assert schedule.last_tick is None  # the ticks go on as before
    assert ticks.enqueue_due()[0] == 0


def test_next_due_is_the_earliest_enabled_tick_with_the_database_clock(db: None) -> None:
    assert ticks.next_due() is None
    now = database_now()
    make_schedule(next_tick=now + 90 * SECOND)
    make_schedule("later", next_tick=now + 900 * SECOND)
    make_schedule("off", next_tick=now + 5 * SECOND, enabled=False)

    found = ticks.next_due()

    assert found is not None
    earliest, clock = found
    assert earliest == now + 90 * SECOND
    assert now <= clock <= database_now()


def test_the_scheduler_sleeps_until_the_next_tick_and_enqueues_what_is_due(db: None) -> None:
    worker = WorkerModel.objects.create(name="w", hostname="h", pid=1)
    thread = Scheduler(worker, threading.Event())  # not started: its passes, one by one
    assert thread.tick() == scheduler.IDLE_SECONDS  # no schedule: look again in a while

    row = make_schedule(next_tick=database_now() + 0.5 * SECOND)
    assert 0.3 < thread.tick() <= 0.5  # until the tick, on the database's clock
    ScheduleModel.objects.filter(pk=row.pk).update(next_tick=database_now() + 3600 * SECOND)
    assert thread.tick() == scheduler.IDLE_SECONDS  # never longer than that

    ScheduleModel.objects.filter(pk=row.pk).update(next_tick=database_now() - SECOND)
    assert thread.tick() == scheduler.SHORTEST_SECONDS
    assert TaskModel.objects.filter(schedule="s").count() == 1
