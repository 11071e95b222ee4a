"""Schedules declared in code: what an entry may say, the system checks, the sync when a
consumer starts, and the rule that makes a rolling deploy change them once."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.core.checks import Error
from django.test import override_settings

from firefly_tasks import declarations, periodic, schedules
from firefly_tasks.checks import check_schedule_tasks, check_schedules
from firefly_tasks.clock import database_now
from firefly_tasks.exceptions import InvalidScheduleError
from firefly_tasks.models import ScheduleModel, WorkerModel, WorkerState
from tests.testapp import tasks

NOTE = "tests.testapp.tasks.note_tick"


def worker(name: str) -> WorkerModel:
    return WorkerModel.objects.create(name=name, hostname="here", pid=1)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"task": NOTE}, "give cron or every"),
        ({"task": NOTE, "cron": "0 3 * * *", "every": 30}, "not both"),
        ({"task": NOTE, "cron": "0 25 * * *"}, "not valid"),
        ({"task": NOTE, "every": 0}, "at least"),
        ({"task": NOTE, "cron": "@daily", "timezone": "Europe/Atlantis"}, "time zone"),
        ({"task": "shop.tasks.gone", "every": 30}, "not a registered task"),
        ({"task": "os.system", "every": 30}, "not a registered task"),  # never a free path
        ({"task": NOTE, "every": 30, "args": [object()]}, "stored as JSON, and arguments"),
        ({"task": NOTE, "every": 30, "args": "abc"}, "args must be a list"),
        ({"task": NOTE, "every": 30, "kwargs": {1: 2}}, "kwargs must be a dict"),
        ({"task": NOTE, "every": 30, "queue": ""}, None),  # the task's queue
        ({"task": NOTE, "every": 30, "priority": 1000}, "priority"),
        ({"task": NOTE, "every": 30, "overlap": "never"}, "overlap"),
        ({"task": NOTE, "every": 30, "missed": "all"}, "missed"),
        ({"task": NOTE, "every": 30, "enabled": "yes"}, "enabled"),
        ({"task": NOTE, "every": 30, "colour": "red"}, "unknown keys colour"),
        ("every 30", "must be a dict"),
    ],
)
def test_each_bad_entry_is_refused_with_what_is_wrong(entry: Any, message: str | None) -> None:
    if message is None:
        assert declarations.spec("ok", entry).queue == ""
        return
    with pytest.raises(InvalidScheduleError, match=message):
        declarations.spec("nightly", entry)


def test_an_entry_is_normalised_and_takes_the_task_itself_or_its_name() -> None:
    by_name = declarations.spec(
        "n", {"task": NOTE, "every": datetime.timedelta(seconds=90), "args": ("x",)}
    )
    by_task = declarations.spec("n", {"task": tasks.note_tick, "every": 90, "args": ["x"]})

    assert by_name == by_task
    assert by_name.every == datetime.timedelta(seconds=90)
    assert by_name.digest == by_task.digest
    assert declarations.spec("d", {"task": NOTE, "cron": "@daily"}).cron == "0 0 * * *"


@override_settings(
    FIREFLY_SCHEDULES={
        "good": {"task": NOTE, "every": 30},
        "bad-cron": {"task": NOTE, "cron": "99 * * * *"},
        "gone": {"task": "shop.tasks.renamed", "every": 30},
    }
)
def test_the_checks_report_each_bad_entry_with_a_stable_id() -> None:
    messages = check_schedules()

    assert [(m.id, "bad-cron" in m.msg or "gone" in m.msg) for m in messages] == [
        ("firefly_tasks.E202", True),
        ("firefly_tasks.E203", True),
    ]
    assert all(isinstance(m, Error) for m in messages)
    with override_settings(FIREFLY_SCHEDULES=["not", "a", "dict"]):
        assert [m.id for m in check_schedules()] == ["firefly_tasks.E201"]


def test_a_schedule_in_the_table_whose_task_is_gone_is_reported(db: None) -> None:
    now, day = database_now(), datetime.timedelta(days=1)
    ScheduleModel.objects.create(name="old", func_name="shop.tasks.gone", every=day, next_tick=now)
    ScheduleModel.objects.create(name="fine", func_name=NOTE, every=day, next_tick=now)

    messages = check_schedule_tasks(databases=["default"])

    assert [(m.id, "'old'" in m.msg) for m in messages] == [("firefly_tasks.W201", True)]
    assert check_schedule_tasks(databases=[]) == []


def test_periodic_declares_a_schedule_of_the_task_below_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(declarations, "_decorated", {})

    assert (
        periodic(cron="*/5 * * * *", kwargs={"label": "five"})(tasks.note_tick) is tasks.note_tick
    )
    periodic(every=60, name="minutely")(tasks.note_tick)

    assert declarations.declared() == {
        NOTE: {"task": NOTE, "cron": "*/5 * * * *", "kwargs": {"label": "five"}},
        "minutely": {"task": NOTE, "every": 60},
    }
    with pytest.raises(InvalidScheduleError, match="above @task"):
        periodic(every=60)(lambda: None)
    with pytest.raises(InvalidScheduleError, match="give cron or every"):
        periodic()(tasks.note_tick)
    with override_settings(FIREFLY_SCHEDULES={"minutely": {"task": NOTE, "every": 5}}):
        assert [m.id for m in check_schedules()] == ["firefly_tasks.E204"]


@override_settings(
    FIREFLY_SCHEDULES={
        "every-minute": {"task": NOTE, "every": 60, "args": ["m"]},
        "nightly": {"task": NOTE, "cron": "0 3 * * *", "timezone": "Europe/Paris"},
        "broken": {"task": NOTE, "cron": "nonsense"},
    }
)
def test_sync_creates_the_declared_schedules_and_leaves_out_broken_ones(db: None) -> None:
    before = database_now()

    assert schedules.sync(worker("a")) is True

    rows = {row.name: row for row in ScheduleModel.objects.all()}
    assert sorted(rows) == ["every-minute", "nightly"]
    minute = rows["every-minute"]
    assert (minute.source, minute.enabled, minute.params_preview) == ("settings", True, "'m'")
    assert minute.next_tick == minute.anchor + datetime.timedelta(seconds=60)
    assert minute.anchor >= before - datetime.timedelta(seconds=1)
    nightly = rows["nightly"]
    assert nightly.next_tick.astimezone(datetime.UTC).minute == 0
    assert nightly.next_tick > before


def test_sync_keeps_a_tick_that_stands_retimes_a_changed_one_and_disables_removed_ones(
    db: None,
) -> None:
    declared = {
        "keep": {"task": NOTE, "every": 60},
        "retime": {"task": NOTE, "every": 60},
        "drop": {"task": NOTE, "every": 60},
    }
    with override_settings(FIREFLY_SCHEDULES=declared):
        schedules.sync(worker("first"))
    first = {row.name: row for row in ScheduleModel.objects.all()}
    WorkerModel.objects.all().update(state=WorkerState.STOPPED)  # the deploy is over

    changed = {
        "keep": {"task": NOTE, "every": 60, "args": ["new args"]},  # same timing
        "retime": {"task": NOTE, "every": 120},
    }
    with override_settings(FIREFLY_SCHEDULES=changed):
        assert schedules.sync(worker("second")) is True

    now = {row.name: row for row in ScheduleModel.objects.all()}
    assert now["keep"].next_tick == first["keep"].next_tick  # no tick lost or added
    assert now["keep"].params_preview == "'new args'"
    assert now["retime"].every == datetime.timedelta(seconds=120)
    assert now["retime"].next_tick == now["retime"].anchor + datetime.timedelta(seconds=120)
    assert now["drop"].enabled is False  # disabled, not deleted: its history stays
    assert (now["keep"].enabled, now["retime"].enabled) == (True, True)


def test_settings_take_over_an_admin_schedule_of_the_same_name(db: None) -> None:
    ScheduleModel.objects.create(
        name="report", func_name=NOTE, cron="0 1 * * *", next_tick=database_now(), source="admin"
    )
    with override_settings(FIREFLY_SCHEDULES={"report": {"task": NOTE, "cron": "0 2 * * *"}}):
        schedules.sync(worker("a"))

    row = ScheduleModel.objects.get()
    assert (row.source, row.cron) == ("settings", "0 2 * * *")


OLD = {"report": {"task": NOTE, "cron": "0 2 * * *"}}
NEW = {"report": {"task": NOTE, "cron": "0 4 * * *"}}


def sync_as(name: str, declared: dict[str, Any]) -> bool:
    with override_settings(FIREFLY_SCHEDULES=declared):
        return schedules.sync(worker(name))


def cron() -> str:
    return str(ScheduleModel.objects.get(name="report").cron)


def test_a_rolling_deploy_changes_a_schedule_once_and_never_back(db: None) -> None:
    assert sync_as("old-1", OLD) and sync_as("old-2", OLD)
    assert cron() == "0 2 * * *"

    assert sync_as("new-1", NEW) is True  # the first consumer of the deploy
    assert cron() == "0 4 * * *"
    # An old consumer restarts mid-deploy (its old self still counts as live): it runs the
    # declarations held since before the new ones, so it does not put them back.
    assert sync_as("old-1-restarted", OLD) is False
    assert cron() == "0 4 * * *"
    assert sync_as("new-2", NEW) is True  # same declarations: nothing changes
    assert cron() == "0 4 * * *"
    since = {
        name: moment
        for name, moment in WorkerModel.objects.values_list("name", "schedules_since")
        if moment is not None
    }
    assert since["old-1-restarted"] == since["old-1"] < since["new-1"] == since["new-2"]


def test_after_the_deploy_a_rollback_is_a_deploy_like_any_other(db: None) -> None:
    sync_as("old", OLD)
    sync_as("new", NEW)
    WorkerModel.objects.filter(name="old").update(state=WorkerState.STOPPED)
    WorkerModel.objects.filter(name="new").update(state=WorkerState.DEAD)

    assert sync_as("rolled-back", OLD) is True  # nobody live runs the newer ones any more
    assert cron() == "0 2 * * *"
