"""The Schedules pages: create and edit with the engine's rules, registered tasks only, declared
schedules read-only, run now / enable / disable as permission-gated, logged POST actions, and
every row rendered escaped whatever it holds."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from firefly_tasks import ticks
from firefly_tasks.clock import database_now
from firefly_tasks.models import ScheduleModel, TaskModel

NOTE = "tests.testapp.tasks.note_tick"
CHANGELIST = reverse("admin:firefly_admin_schedule_changelist")
ADD = reverse("admin:firefly_admin_schedule_add")
EDITORS = ("view_schedule", "add_schedule", "change_schedule", "delete_schedule")


def change_url(row: ScheduleModel) -> str:
    return reverse("admin:firefly_admin_schedule_change", args=[row.pk])


def form(**values: Any) -> dict[str, Any]:
    data = {"name": "report", "func_name": NOTE, "cron": "", "every_seconds": "",
            "time_zone": "", "args": '["weekly"]', "kwargs": "{}", "queue": "",
            "priority": "", "overlap": "allow", "missed": "once", "enabled": "on"}  # fmt: skip
    data.update(values)
    return {k: v for k, v in data.items() if v is not None}


def make(name: str = "report", **fields: Any) -> ScheduleModel:
    in_an_hour = database_now() + datetime.timedelta(hours=1)
    values: dict[str, Any] = {"func_name": NOTE, "cron": "0 3 * * *", "next_tick": in_an_hour}
    values.update(fields)
    return ScheduleModel.objects.create(name=name, **values)


def test_a_schedule_made_in_the_admin_follows_the_engines_rules_and_is_logged(
    staff_client: Callable[..., Client],
) -> None:
    client = staff_client(*EDITORS)
    before = database_now()

    response = client.post(ADD, form(cron="30 2 * * *", time_zone="Europe/Paris"))

    assert response.status_code == 302, response.content.decode()[:2000]
    row = ScheduleModel.objects.get()
    assert (row.source, row.cron, row.time_zone, row.params_preview) == (
        "admin", "30 2 * * *", "Europe/Paris", "'weekly'",
    )  # fmt: skip
    assert row.next_tick == ticks.cadence_of(row).next_after(before) or row.next_tick > before
    assert LogEntry.objects.filter(object_id=str(row.pk), object_repr="report").exists()

    # An edit that keeps the timing keeps the next tick; one that changes it retimes.
    tick = row.next_tick
    assert client.post(change_url(row), form(cron="30 2 * * *", time_zone="Europe/Paris",
                                             args='["daily"]')).status_code == 302  # fmt: skip
    row.refresh_from_db()
    assert (row.next_tick, row.params_preview) == (tick, "'daily'")
    assert client.post(change_url(row), form(every_seconds="90")).status_code == 302
    row.refresh_from_db()
    assert (row.cron, row.every) == ("", datetime.timedelta(seconds=90))
    assert row.next_tick == row.anchor + datetime.timedelta(seconds=90)


def test_the_form_refuses_what_a_consumer_could_not_run(
    staff_client: Callable[..., Client],
) -> None:
    client = staff_client(*EDITORS)
    refused = {
        "a free dotted path": form(func_name="os.system", cron="@daily"),
        "a bad cron": form(cron="99 * * * *"),
        "neither cron nor every": form(),
        "both": form(cron="@daily", every_seconds="5"),
        "arguments that are not a list": form(cron="@daily", args='{"a": 1}'),
        "broken JSON": form(cron="@daily", kwargs="{nope"),
        "a priority out of range": form(cron="@daily", priority="500"),
    }
    for why, data in refused.items():
        response = client.post(ADD, data)
        assert response.status_code == 200, why  # the form again, with its errors
        assert "errornote" in response.content.decode(), why
    assert not ScheduleModel.objects.exists()


def test_a_schedule_declared_in_code_is_read_only_and_marked(
    staff_client: Callable[..., Client],
) -> None:
    row = make(source="settings")
    client = staff_client(*EDITORS)

    page = client.get(change_url(row)).content.decode()

    assert "in code (read-only)" in page
    assert 'name="cron"' not in page  # no input to edit
    assert client.post(change_url(row), form(cron="@hourly")).status_code == 403
    row.refresh_from_db()
    assert row.cron == "0 3 * * *"
    delete = reverse("admin:firefly_admin_schedule_delete", args=[row.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403


def test_run_now_needs_its_permission_and_enqueues_a_logged_run(
    staff_client: Callable[..., Client],
) -> None:
    row = make()
    action = {"action": "run_now", "_selected_action": [row.pk]}

    viewer = staff_client("view_schedule", "change_schedule", username="viewer")
    viewer.post(CHANGELIST, action)
    assert not TaskModel.objects.exists()  # not offered, not done

    runner = staff_client("view_schedule", "run_schedule", username="runner")
    runner.get(CHANGELIST, {"action": "run_now", "_selected_action": str(row.pk)})  # GET: nothing
    assert not TaskModel.objects.exists()
    assert runner.post(CHANGELIST, action).status_code == 302

    (task,) = TaskModel.objects.all()
    assert (task.schedule, task.scheduled_for, task.func_name) == ("report", None, NOTE)
    assert LogEntry.objects.filter(change_message=f"Ran now: task #{task.pk}").exists()


def test_a_disabled_schedule_stops_firing_and_ticks_from_now_when_enabled_again(
    staff_client: Callable[..., Client],
) -> None:
    row = make(next_tick=database_now() - datetime.timedelta(hours=5))
    client = staff_client(*EDITORS)

    client.post(CHANGELIST, {"action": "disable", "_selected_action": [row.pk]})
    assert ticks.enqueue_due()[0] == 0
    assert not TaskModel.objects.exists()

    client.post(CHANGELIST, {"action": "enable", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.enabled and row.next_tick > database_now()  # the missed ticks never run
    assert LogEntry.objects.filter(change_message="Disabled").count() == 1
    assert LogEntry.objects.filter(change_message="Enabled").count() == 1


def test_every_page_renders_whatever_a_row_holds_escaped(
    staff_client: Callable[..., Client],
) -> None:
    script = "<script>alert(1)</script>"
    odd = make(
        name=f"odd {script}",
        func_name=f"gone.{script}",
        params_data="not json {",
        problem=script,
        time_zone="Nowhere/Land",
    )
    make("interval", cron="", every=datetime.timedelta(seconds=30), enabled=False)
    TaskModel.objects.create(
        func_name=NOTE, queue="default", params_data="[[], {}]", schedule=odd.name
    )
    client = staff_client(*EDITORS)

    for url in (CHANGELIST, change_url(odd), ADD, f"{CHANGELIST}?q=odd"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert script not in response.content.decode(), url


DASHBOARD = reverse("admin:firefly_admin_task_dashboard")


def test_the_dashboard_shows_the_next_ticks_and_the_schedules_that_need_a_look(
    admin_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    now = database_now()
    make("hourly", cron="0 * * * *", next_tick=now + datetime.timedelta(minutes=30))
    make("later", cron="0 3 * * *", next_tick=now + datetime.timedelta(hours=20))
    # Daily, twelve hours from now: its next tick stays out of the hours the test looks at.
    far_off = f"0 {(now.hour + 12) % 24} * * *"
    make("stuck", cron=far_off, next_tick=now - datetime.timedelta(hours=2))  # not enqueued
    make("renamed", problem="'shop.tasks.old' is not a registered task. <b>x</b>",
         next_tick=now + datetime.timedelta(days=3))  # fmt: skip
    make("off", enabled=False, next_tick=now - datetime.timedelta(hours=2))

    with django_assert_max_num_queries(10):  # as bench/bigtable.py counts them
        page = admin_client.get(DASHBOARD).content.decode()
    region = admin_client.get(
        DASHBOARD, headers={"HX-Request": "true", "HX-Target": "ff-schedules"}
    )

    assert region.status_code == 200
    upcoming = [tick.schedule.name for tick in region.context["upcoming_ticks"]]
    # The late one's stored tick, then the hourly ticks: five, in time order.
    assert upcoming == ["stuck", "hourly", "hourly", "hourly", "hourly"]
    ticks_shown = [tick.moment for tick in region.context["upcoming_ticks"]]
    assert ticks_shown == sorted(ticks_shown)
    needing = {a.schedule.name: a.behind for a in region.context["schedules_attention"]}
    assert needing == {"stuck": True, "renamed": False}
    assert "behind: due since" in page and "Periodic schedules" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
