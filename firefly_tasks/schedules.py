"""Declared schedules synced to the schedule table when a consumer starts.

Rolling deploys. Consumers with old and new declarations run side by side during a deploy;
each records on its worker row the digest of what it declares and since when consumers have
run with it (the database's time: the earliest ``schedules_since`` among live consumers with
the same digest, else now). A consumer syncs only if its declarations are the newest among
the live consumers: so an old consumer restarted during the deploy (its digest held since
before the new one) never puts the old definitions back, and definitions change once per
deploy. A rollback is a deploy like any other once no consumer runs the newer declarations.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging

from django.db.models import Q

from firefly_tasks import database
from firefly_tasks.clock import database_now
from firefly_tasks.declarations import ScheduleSpec, declared, spec
from firefly_tasks.exceptions import InvalidScheduleError
from firefly_tasks.models import ScheduleModel, WorkerModel
from firefly_tasks.states import ScheduleSource, WorkerState

logger = logging.getLogger("firefly_tasks")


def valid_specs() -> list[ScheduleSpec]:
    """The declared schedules that pass their checks, by name; the others are logged (the
    system checks report them too) and left out."""
    specs = []
    for name, entry in sorted(declared().items()):
        try:
            specs.append(spec(name, entry))
        except InvalidScheduleError as exc:
            logger.error("schedule left out: %s", exc)
    return specs


def set_digest(specs: list[ScheduleSpec]) -> str:
    return hashlib.sha256(json.dumps([(s.name, s.digest) for s in specs]).encode()).hexdigest()


def sync(worker: WorkerModel) -> bool:
    """Record what ``worker`` declares and, if it is the newest deploy among the live
    consumers, make the schedule table match it. True if it synced."""
    specs = valid_specs()
    mine = set_digest(specs)
    with database.atomic():
        now = database_now()
        live = WorkerModel.objects.filter(
            state__in=(WorkerState.RUNNING, WorkerState.STOPPING), schedules_since__isnull=False
        ).exclude(pk=worker.pk)
        others: list[tuple[datetime.datetime, str]] = [
            (since, digest)
            for since, digest in live.values_list("schedules_since", "schedules_digest")
            if since is not None
        ]
        since = min([s for s, d in others if d == mine], default=now)
        WorkerModel.objects.filter(pk=worker.pk).update(
            schedules_digest=mine, schedules_since=since
        )
        worker.schedules_digest, worker.schedules_since = mine, since
        if max([*others, (since, mine)]) != (since, mine):
            logger.info("schedules not synced: consumers deployed later declare others")
            return False
        apply(specs, now)
    return True


def apply(specs: list[ScheduleSpec], now: datetime.datetime) -> None:
    """Make the settings schedules match ``specs``, in the caller's transaction: create and
    update them (a tick already due stands unless the timing changed), and disable those no
    longer declared. Rows are locked in name order, as the ticks take them."""
    names = [s.name for s in specs]
    rows = _locked_rows(names)
    for item in specs:
        row = rows.pop(item.name, None) or ScheduleModel(name=item.name)
        if row._state.adding or row.digest != item.digest or row.source != ScheduleSource.SETTINGS:
            write(row, item, now, source=ScheduleSource.SETTINGS)
    for row in rows.values():  # declared no more: disabled, history kept
        if row.source == ScheduleSource.SETTINGS and row.enabled:
            row.enabled, row.updated, row.digest = False, now, ""
            row.save(update_fields=["enabled", "updated", "digest"])


def _locked_rows(names: list[str]) -> dict[str, ScheduleModel]:
    query = ScheduleModel.objects.select_for_update().filter(
        Q(name__in=names) | Q(source=ScheduleSource.SETTINGS)
    )
    return {row.name: row for row in query.order_by("name")}


def write(row: ScheduleModel, item: ScheduleSpec, now: datetime.datetime, *, source: str) -> None:
    """Make ``row`` (new or not) say what ``item`` says and save it. Its next tick stands
    unless it is new, was disabled, or ticks otherwise now: then it is timed afresh from
    ``now`` (an interval's grid anchored there)."""
    if row._state.adding or not row.enabled or not item.times_like(row):
        row.anchor = now
        row.next_tick = item.cadence(now).next_after(now)
    for field in ("func_name", "backend", "cron", "every", "time_zone", "params_data",
                  "params_preview", "queue", "priority", "overlap", "missed",
                  "enabled"):  # fmt: skip
        setattr(row, field, getattr(item, field))
    row.source, row.updated, row.problem = source, now, ""
    row.digest = item.digest if source == ScheduleSource.SETTINGS else ""
    if row._state.adding:
        row.created = now
    row.save()
