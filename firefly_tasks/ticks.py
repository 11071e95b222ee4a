"""The due ticks of periodic schedules, enqueued: each tick becomes exactly one task, whatever
the number of consumers and machines enqueueing.

A pass reads the due schedules (due on the database's clock), works out each one's task and
next tick in Python, then, in one transaction, moves each schedule on with a compare-and-set
(``UPDATE ... SET next_tick = :next WHERE id = :id AND next_tick = :tick AND enabled``) and
inserts the task only where that changed the row. Two consumers that read the same tick both
try; the database lets one change the row, and the other's update matches nothing, so it
inserts nothing. The task and the schedule's move commit together or not at all. Rows are
updated in name order, so two passes never wait on each other in a cycle.

Ticks missed while no consumer was enqueueing (every consumer down, say) make one task, for
the latest of them (``missed="once"``), or none (``missed="skip"``); the schedule then waits
for its next tick. A tick whose schedule has ``overlap="skip"`` makes no task while the
schedule's previous task is unfinished.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.db import DatabaseError, connections, transaction

from firefly_tasks import calls, database, serialization
from firefly_tasks.cadence import Cadence
from firefly_tasks.clock import DatabaseNow, database_now
from firefly_tasks.conf import settings
from firefly_tasks.dialects import dialect
from firefly_tasks.dialects.ticking import Move
from firefly_tasks.exceptions import FireflyError
from firefly_tasks.models import ScheduleModel, TaskModel
from firefly_tasks.registry import registry
from firefly_tasks.states import FINISHED_STATUSES, MissedTicks, Overlap

logger = logging.getLogger("firefly_tasks")

# The most schedules one pass takes; a pass that took this many is followed by another.
PASS_MOST = 500
# How long a schedule that cannot be evaluated (its cron or time zone went bad) waits before
# it is tried again.
RETRY_BROKEN = datetime.timedelta(hours=1)


@dataclass
class Tick:
    """What a pass will do with one due schedule: move it on to ``next_tick``, and insert
    ``task`` (unless there is none to insert: skipped, or it has a problem)."""

    schedule: ScheduleModel
    next_tick: datetime.datetime
    tick: datetime.datetime | None = None
    task: TaskModel | None = None
    problem: str = ""
    skipped: str = ""


def enqueue_due(using: str | None = None) -> tuple[int, datetime.datetime]:
    """One pass over the due schedules; returns how many schedules it took (all of them
    ticked, by this process or another) and the database's time it judged them by."""
    using = using or database.alias()
    now = database_now(using)
    due = list(
        ScheduleModel.objects.using(using)
        .filter(enabled=True, next_tick__lte=now)
        .order_by("name")[:PASS_MOST]
    )
    if not due:
        return 0, now
    busy = _unfinished(using, [row.name for row in due if row.overlap == Overlap.SKIP])
    ticks = [plan(row, now, busy) for row in due]
    try:
        with transaction.atomic(using=using):
            _enqueue(ticks, using)
    except DatabaseError as exc:
        if not _is_row_error(exc, using):
            raise
        # One schedule's task could not be stored (and on PostgreSQL the transaction is
        # lost): the others go alone, and the one that fails is told so.
        logger.warning("schedule pass failed, enqueueing one by one error=%s", exc)
        for tick in ticks:
            _enqueue_alone(tick, using)
    return len(due), now


def plan(row: ScheduleModel, now: datetime.datetime, busy: set[str]) -> Tick:
    """What to do with the due schedule ``row`` at ``now``: no query."""
    try:
        cadence = cadence_of(row)
        next_tick = cadence.next_after(now)
        tick = max(cadence.latest_at_or_before(now) or row.next_tick, row.next_tick)
    except FireflyError as exc:
        return Tick(row, now + RETRY_BROKEN, problem=str(exc))
    planned = Tick(row, next_tick, tick)
    if row.missed == MissedTicks.SKIP and tick > row.next_tick:
        planned.skipped = "missed ticks (missed=skip)"
    elif row.name in busy:
        planned.skipped = "previous task unfinished (overlap=skip)"
    else:
        try:
            planned.task = task_row(row, now, tick)
        except FireflyError as exc:
            planned.problem = str(exc)
    return planned


def cadence_of(row: ScheduleModel) -> Cadence:
    return Cadence(
        cron=row.cron or None,
        every=row.every,
        zone=row.time_zone or settings.TIME_ZONE,
        anchor=row.anchor,
    )


def task_row(
    row: ScheduleModel, now: datetime.datetime, tick: datetime.datetime | None
) -> TaskModel:
    """The unsaved task row of one run of ``row``, for ``tick`` (None: a run asked for)."""
    task = registry.resolve(row.func_name, backend=row.backend)
    args, kwargs = serialization.loads(row.params_data, "json")
    if row.backend:  # a Django Tasks framework task: its backend builds the row
        framework = task.task  # type: ignore[attr-defined]
        if row.queue:
            framework = framework.using(queue_name=row.queue)
        if row.priority is not None:
            framework = framework.using(priority=row.priority)
        backend = task.backend  # type: ignore[attr-defined]
        try:
            backend.validate_task(framework)
            built = backend.build_row(framework, args, kwargs, now)
        except Exception as exc:  # the framework's InvalidTask and friends: no query here
            raise FireflyError(f"{row.func_name!r} cannot be enqueued: {exc}") from exc
        built.schedule, built.scheduled_for = row.name, tick
        return built  # type: ignore[no-any-return]
    options = getattr(task, "options", None)
    if options is None:
        raise FireflyError(f"{row.func_name!r} is not a Firefly task (@task or @atask).")
    if row.queue:
        options = options.replace(queue=row.queue)
    if row.priority is not None:
        options = options.replace(priority=row.priority)
    (built,) = calls.build_rows(task.name, options, [(tuple(args), dict(kwargs))], now=now)
    built.schedule, built.scheduled_for = row.name, tick
    return built


def _enqueue(ticks: list[Tick], using: str) -> list[Tick]:
    """Move each schedule on and insert its task, where the schedule still stands where the
    pass read it: its row locked, its next tick still the one read, and enabled (the
    compare-and-set, checked again by the ``UPDATE`` itself). The tasks go in one statement.
    Returns the ticks this process won."""
    # Locked in name order, as every writer of several schedule rows takes them.
    locked = (
        ScheduleModel.objects.using(using)
        .select_for_update()
        .filter(name__in=[tick.schedule.name for tick in ticks])
        .order_by("name")
        .values_list("pk", "next_tick", "enabled")
    )
    waiting = {pk: tick for pk, tick, enabled in locked if enabled}
    won = [tick for tick in ticks if waiting.get(tick.schedule.pk) == tick.schedule.next_tick]
    dialect(connections[using]).move_schedules(
        ScheduleModel,
        [
            Move(
                pk=tick.schedule.pk,
                tick=tick.schedule.next_tick,
                next_tick=tick.next_tick,
                last_tick=tick.tick if tick.task is not None else None,
                problem=tick.problem,
            )
            for tick in won
        ],
    )
    tasks = [tick.task for tick in won if tick.task is not None]
    if tasks:
        calls.store(tasks)
    for tick in won:
        if tick.problem:
            logger.warning("schedule skipped name=%s problem=%s", tick.schedule.name, tick.problem)
        elif tick.skipped:
            logger.info("schedule tick skipped name=%s reason=%s", tick.schedule.name, tick.skipped)
    return won


def _enqueue_alone(tick: Tick, using: str) -> None:
    try:
        with transaction.atomic(using=using):
            _enqueue([tick], using)
    except DatabaseError as exc:
        if not _is_row_error(exc, using):
            raise
        tick.task, tick.problem = None, f"the task could not be stored: {exc}"
        with transaction.atomic(using=using):
            _enqueue([tick], using)


def _is_row_error(exc: DatabaseError, using: str) -> bool:
    """An error of the statement's data (a constraint, a value too long), not of the
    connection: the schedule is at fault, not the database."""
    return not dialect(connections[using]).is_connection_error(exc)


def _unfinished(using: str, names: list[str]) -> set[str]:
    """Which of the schedules ``names`` have a task not finished yet."""
    if not names:
        return set()
    rows = TaskModel.objects.using(using).filter(schedule__in=names)
    return set(rows.exclude(status__in=FINISHED_STATUSES).values_list("schedule", flat=True))


def next_due(using: str | None = None) -> tuple[datetime.datetime, datetime.datetime] | None:
    """The earliest tick of an enabled schedule and the database's time, in one query (an
    idle scheduler's only query); None when no schedule is enabled."""
    using = using or database.alias()
    found = (
        ScheduleModel.objects.using(using)
        .filter(enabled=True)
        .annotate(now=DatabaseNow())
        .order_by("next_tick")
        .values_list("next_tick", "now")
        .first()
    )
    return None if found is None else (found[0], found[1])


def run_now(row: ScheduleModel, using: str | None = None) -> TaskModel:
    """Enqueue a run of ``row`` now, outside its ticks (its next tick stands)."""
    using = using or database.alias()
    task = task_row(row, database_now(using), None)
    (stored,) = calls.store([task])
    return stored
