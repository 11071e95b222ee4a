"""What the dashboard shows of periodic schedules: the next ticks, and the schedules that need
a look (behind: a tick due for a while and not enqueued, so no consumer runs the scheduler; or a
problem kept on the row). One bounded query."""

from __future__ import annotations

import contextlib
import datetime
import heapq
from dataclasses import dataclass

from django.db.models import Case, Q, Value, When

from firefly_tasks import ticks
from firefly_tasks.exceptions import FireflyError
from firefly_tasks.models import ScheduleModel

# A due tick older than this has not been enqueued: consumers would have within a second.
BEHIND_AFTER = datetime.timedelta(seconds=60)
SHOWN = 5
ATTENTION_MOST = 10


@dataclass(frozen=True)
class UpcomingTick:
    moment: datetime.datetime
    schedule: ScheduleModel


@dataclass(frozen=True)
class Attention:
    schedule: ScheduleModel
    behind: bool


@dataclass(frozen=True)
class ScheduleSummary:
    upcoming: list[UpcomingTick]
    attention: list[Attention]


def summary(now: datetime.datetime) -> ScheduleSummary:
    """The next :data:`SHOWN` ticks of the enabled schedules, and those that need a look:
    behind by more than :data:`BEHIND_AFTER` at ``now`` (this host's clock: the margin
    dwarfs any skew) or with a problem. One query: the rows with a problem first, then by
    next tick (the late ones, then the soonest). Only past :data:`ATTENTION_MOST` schedules
    with problems could the upcoming ticks miss one: the problems fill the panel then."""
    problem_first = Case(When(~Q(problem=""), then=Value(0)), default=Value(1))
    rows = list(
        ScheduleModel.objects.filter(enabled=True).order_by(problem_first, "next_tick", "name")[
            : ATTENTION_MOST + SHOWN
        ]
    )
    late = now - BEHIND_AFTER
    attention = [
        Attention(row, row.next_tick < late) for row in rows if row.problem or row.next_tick < late
    ]
    return ScheduleSummary(_upcoming(rows), attention[:ATTENTION_MOST])


def _upcoming(rows: list[ScheduleModel]) -> list[UpcomingTick]:
    found: list[tuple[datetime.datetime, str, UpcomingTick]] = []
    for row in rows:
        moments = [row.next_tick]
        # A schedule that cannot be evaluated shows its stored tick (and its problem).
        with contextlib.suppress(FireflyError):
            moments += ticks.cadence_of(row).upcoming(row.next_tick, SHOWN - 1)
        found += [(moment, row.name, UpcomingTick(moment, row)) for moment in moments]
    return [tick for _, _, tick in heapq.nsmallest(SHOWN, found, key=lambda t: (t[0], t[1]))]
