"""When schedules tick: cron in a time zone across daylight-saving changes, and fixed grids.
Pure functions of a fixed clock: no database."""

from __future__ import annotations

import datetime
import itertools
import zoneinfo

import pytest

from firefly_tasks.cadence import Cadence, interval
from firefly_tasks.exceptions import InvalidScheduleError

UTC = datetime.UTC
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def ticks_on(
    cadence: Cadence, day: datetime.date, zone: zoneinfo.ZoneInfo
) -> list[datetime.datetime]:
    """The ticks whose local date (in ``zone``) is ``day``."""
    start = datetime.datetime.combine(day, datetime.time(), zone) - datetime.timedelta(hours=3)
    found: list[datetime.datetime] = []
    moment = start.astimezone(UTC)
    while True:
        moment = cadence.next_after(moment)
        local = moment.astimezone(zone)
        if local.date() > day:
            return found
        if local.date() == day:
            found.append(local)


@pytest.mark.parametrize(
    ("zone", "spring", "autumn", "repeated", "offset"),
    [  # the hour that happens twice, and the offset of its first time
        (PARIS, datetime.date(2026, 3, 29), datetime.date(2026, 10, 25), 2, 2),
        (NEW_YORK, datetime.date(2026, 3, 8), datetime.date(2026, 11, 1), 1, -4),
    ],
)
def test_a_daily_schedule_runs_once_on_both_daylight_saving_days(
    zone: zoneinfo.ZoneInfo,
    spring: datetime.date,
    autumn: datetime.date,
    repeated: int,
    offset: int,
) -> None:
    # 02:30 does not exist on the spring day: the first minute after the gap.
    (forward,) = ticks_on(Cadence(cron="30 2 * * *", zone=str(zone)), spring, zone)
    assert (forward.hour, forward.minute) == (3, 0)
    # The repeated hour's half past happens twice on the autumn day: once, the first time.
    daily = Cadence(cron=f"30 {repeated} * * *", zone=str(zone))
    (back,) = ticks_on(daily, autumn, zone)
    assert (back.hour, back.minute, back.fold) == (repeated, 30, 0)
    assert back.utcoffset() == datetime.timedelta(hours=offset)
    # Any other day: at its time.
    (ordinary,) = ticks_on(daily, spring + datetime.timedelta(days=1), zone)
    assert (ordinary.hour, ordinary.minute) == (repeated, 30)


@pytest.mark.parametrize(
    ("zone", "spring", "autumn"),
    [
        (PARIS, datetime.date(2026, 3, 29), datetime.date(2026, 10, 25)),
        (NEW_YORK, datetime.date(2026, 3, 8), datetime.date(2026, 11, 1)),
    ],
)
def test_an_hourly_schedule_runs_every_real_hour(
    zone: zoneinfo.ZoneInfo, spring: datetime.date, autumn: datetime.date
) -> None:
    for cron in ("0 * * * *", "@hourly"):
        hourly = Cadence(cron=cron, zone=str(zone))
        short, long = ticks_on(hourly, spring, zone), ticks_on(hourly, autumn, zone)
        assert (len(short), len(long)) == (23, 25)
        for day in (short, long):  # one real hour apart, every one of them
            gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in itertools.pairwise(day)}
            assert gaps == {datetime.timedelta(hours=1)}


def test_cron_is_read_in_its_time_zone_and_returned_in_utc() -> None:
    paris = Cadence(cron="0 9 * * 1-5", zone="Europe/Paris")  # 09:00 in Paris, weekdays
    friday_evening = datetime.datetime(2026, 12, 4, 18, tzinfo=UTC)

    monday = paris.next_after(friday_evening)
    assert monday == datetime.datetime(2026, 12, 7, 8, tzinfo=UTC)  # CET is UTC+1
    assert monday.tzinfo is UTC
    assert paris.latest_at_or_before(monday) == monday  # at: included
    assert paris.latest_at_or_before(monday - datetime.timedelta(microseconds=1)) == (
        datetime.datetime(2026, 12, 4, 8, tzinfo=UTC)
    )
    assert paris.upcoming(friday_evening, 3) == [
        datetime.datetime(2026, 12, d, 8, tzinfo=UTC) for d in (7, 8, 9)
    ]


@pytest.mark.parametrize(
    ("nickname", "expression"),
    [("@daily", "0 0 * * *"), ("@HOURLY", "0 * * * *"), ("@weekly", "0 0 * * 0"),
     ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"),
     ("@midnight", "0 0 * * *")],
)  # fmt: skip
def test_nicknames_are_their_expressions(nickname: str, expression: str) -> None:
    assert Cadence(cron=nickname).cron == expression


def test_every_ticks_on_a_fixed_grid_from_its_anchor() -> None:
    anchor = datetime.datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    grid = Cadence(every=datetime.timedelta(seconds=30), anchor=anchor)

    assert grid.next_after(anchor - datetime.timedelta(days=1)) == anchor
    assert grid.next_after(anchor) == anchor + datetime.timedelta(seconds=30)
    # However late it is asked, the answer stays on the grid: no drift from run times.
    late = anchor + datetime.timedelta(minutes=10, seconds=7, microseconds=3)
    assert grid.next_after(late) == anchor + datetime.timedelta(minutes=10, seconds=30)
    assert grid.latest_at_or_before(late) == anchor + datetime.timedelta(minutes=10)
    assert grid.latest_at_or_before(anchor - datetime.timedelta(seconds=1)) is None
    seconds = Cadence(every=interval(1.5), anchor=anchor)
    assert seconds.next_after(anchor) == anchor + datetime.timedelta(seconds=1.5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "61 * * * *"}, "not valid"),
        ({"cron": "* * * *"}, "five fields"),
        ({"cron": "0 * * * * *"}, "five fields"),  # seconds: not cron's five fields
        ({"cron": "@reboot"}, "nickname"),
        ({"cron": "0 0 30 2 *"}, "not valid"),  # February 30th
        ({"cron": ""}, "non-empty"),
        ({"cron": 5}, "non-empty"),
        ({"cron": "0 3 * * *", "zone": "Mars/Olympus"}, "not a known time zone"),
        ({"every": 0}, "at least"),
        ({"every": -5}, "at least"),
        ({"every": True}, "number of seconds"),
        ({"every": "30"}, "number of seconds"),
        ({}, "exactly one"),
        ({"cron": "0 3 * * *", "every": 30}, "exactly one"),
    ],
)
def test_bad_cadences_say_what_is_wrong(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidScheduleError, match=message):
        Cadence(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("cron", ["30 2 * * *", "0 * * * *", "30 1 * * *", "*/20 * * * *"])
def test_the_latest_tick_at_a_tick_is_that_tick_across_both_changes_of_a_year(
    zone: str, cron: str
) -> None:
    # Missed ticks are found with latest_at_or_before(): it must agree with next_after()
    # on every tick, the odd ones of daylight-saving days included.
    cadence = Cadence(cron=cron, zone=zone)
    for start in (
        datetime.datetime(2026, 3, 1, tzinfo=UTC),
        datetime.datetime(2026, 9, 25, tzinfo=UTC),
    ):
        moment = start
        while moment < start + datetime.timedelta(days=45):
            tick = cadence.next_after(moment)
            assert cadence.latest_at_or_before(tick) == tick
            assert cadence.latest_at_or_before(tick - datetime.timedelta(microseconds=1)) in (
                moment if moment != start else cadence.latest_at_or_before(moment),
            )
            moment = tick
