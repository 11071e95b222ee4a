"""When a periodic schedule ticks: a cron expression in a time zone, or a fixed interval.

Cron expressions are read and stepped by `cronsim <https://pypi.org/project/cronsim/>`_, which
follows Debian's cron, daylight-saving changes included: a job at a fixed time of day runs once
on the day the clocks go forward (at the first minute after the gap, if its time fell in it)
and once on the day they go back; a job whose hour field is ``*`` runs every real hour, 23 times
and 25 times on those days. An interval ticks on a fixed grid from its anchor, whatever the
run times, so it never drifts.

Every moment here is aware; ticks are returned in UTC.
"""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass

from cronsim import CronSim, CronSimError

from firefly_tasks.exceptions import InvalidScheduleError

# The usual nicknames, as in crontab(5); @reboot has no meaning for a schedule.
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
SECOND = datetime.timedelta(seconds=1)
UTC = datetime.UTC


def cron_expression(cron: object) -> str:
    """``cron`` as five fields (a nickname expanded), or :class:`InvalidScheduleError`."""
    if not isinstance(cron, str) or not cron.strip():
        raise InvalidScheduleError(f"cron must be a non-empty string, not {cron!r}.")
    expression = ALIASES.get(cron.strip().lower(), cron.strip())
    if expression.startswith("@"):
        raise InvalidScheduleError(
            f"cron {cron!r} is not a known nickname ({', '.join(sorted(ALIASES))})."
        )
    if len(expression.split()) != 5:
        raise InvalidScheduleError(
            f"cron {cron!r} must have five fields: minute, hour, day of month, month, day of week."
        )
    try:
        next(CronSim(expression, datetime.datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as exc:
        raise InvalidScheduleError(f"cron {cron!r} is not valid: {exc}.") from exc
    except StopIteration as exc:
        raise InvalidScheduleError(f"cron {cron!r} never matches a date.") from exc
    return expression


def interval(every: object) -> datetime.timedelta:
    """``every`` (seconds, or a ``timedelta``) as a positive ``timedelta`` of whole
    milliseconds or more, or :class:`InvalidScheduleError`."""
    if isinstance(every, bool) or not isinstance(every, int | float | datetime.timedelta):
        raise InvalidScheduleError(
            f"every must be a number of seconds or a timedelta, not {every!r}."
        )
    step = every if isinstance(every, datetime.timedelta) else datetime.timedelta(seconds=every)
    if step < datetime.timedelta(milliseconds=1):
        raise InvalidScheduleError(f"every must be at least a millisecond, not {every!r}.")
    return step


def time_zone(name: object) -> zoneinfo.ZoneInfo:
    if not isinstance(name, str) or not name:
        raise InvalidScheduleError(f"timezone must be a time zone name, not {name!r}.")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidScheduleError(f"timezone {name!r} is not a known time zone.") from exc


@dataclass(frozen=True)
class Cadence:
    """Exactly one of ``cron`` (five fields, evaluated in ``zone``) and ``every`` (ticks at
    ``anchor + k * every``; :func:`interval` reads seconds as one)."""

    cron: str | None = None
    every: datetime.timedelta | None = None
    zone: str = "UTC"
    anchor: datetime.datetime | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise InvalidScheduleError("A schedule needs exactly one of cron and every.")
        if self.cron is not None:
            object.__setattr__(self, "cron", cron_expression(self.cron))
            time_zone(self.zone)
        else:
            object.__setattr__(self, "every", interval(self.every))

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first tick strictly after ``moment``."""
        if self.every is not None:
            anchor = self._anchor()
            if moment < anchor:
                return anchor
            steps = (moment - anchor) // self.every + 1
            return anchor + steps * self.every
        assert self.cron is not None
        local = moment.astimezone(zoneinfo.ZoneInfo(self.zone))
        return next(CronSim(self.cron, local)).astimezone(UTC)

    def latest_at_or_before(self, moment: datetime.datetime) -> datetime.datetime | None:
        """The last tick at or before ``moment`` (None if there is none: before the anchor)."""
        if self.every is not None:
            anchor = self._anchor()
            if moment < anchor:
                return None
            return anchor + ((moment - anchor) // self.every) * self.every
        assert self.cron is not None
        # Cron ticks fall on whole minutes: "strictly before the next second" is "at or
        # before" for them.
        start = moment.replace(microsecond=0) + SECOND
        local = start.astimezone(zoneinfo.ZoneInfo(self.zone))
        try:
            return next(CronSim(self.cron, local, reverse=True)).astimezone(UTC)
        except StopIteration:
            return None

    def upcoming(self, moment: datetime.datetime, count: int) -> list[datetime.datetime]:
        """The ``count`` ticks after ``moment``."""
        ticks = []
        for _ in range(count):
            moment = self.next_after(moment)
            ticks.append(moment)
        return ticks

    def _anchor(self) -> datetime.datetime:
        if self.anchor is None:
            raise InvalidScheduleError("An interval schedule needs its anchor.")
        return self.anchor
