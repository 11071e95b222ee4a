"""Concurrency limits: at most ``concurrency_limit`` tasks with one ``concurrency_key`` run at
once, across every consumer (docs/tasks.md, "Concurrency limits").

A slot is a *running* task row of the key, or the thread of a live consumer still stuck in
one of the key's tasks after it was fenced (``StuckTask``, ``firefly_tasks.fence``): the slots
are counted from those rows, never kept apart, so a crash cannot leak one (a dead consumer's
rows count until recovery moves them on, which frees their slots; its stuck threads stop
counting when it stops or is found dead). Claims and releases of a key's tasks take the key's row
(``ConcurrencyKey``) first, so they count one at a time:

- **Admit** (in the claim's transaction): rows claimed past the key's limit go back, unclaimed
  and with no attempt spent, to ``blocked``; when the key is full, its other waiting tasks are
  parked there too, out of the ready index, so that they do not sit ahead of other work in
  every claim.
- **Free** (in the transaction that moves a task off ``running``): up to as many ``blocked``
  tasks as there are free slots go back to ``created``, in run order, and are claimed as any.
- **Reconcile** (consumers' maintenance): the same for every key with blocked tasks, in case a
  release was recorded by code that knew nothing of limits (an older release, a hand edit).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from typing import Any

from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from firefly_tasks.conf import settings
from firefly_tasks.dialects import Claim, writing
from firefly_tasks.key_holds import KeyHolds
from firefly_tasks.states import LIVE_WORKER_STATES, Event, TaskStatus

# Waiting tasks of a full key parked by one claim at most: a claim's work stays bounded.
PARK_CHUNK = 5000
RUN_ORDER = ("-priority", "not_before", "id")


def hold(model: Any, using: str, values: dict[str, Any]) -> None:
    """Lock the row of ``model`` with ``values`` (its key), inserting it if it is missing:
    one upsert that sets its ``used`` time, until the transaction ends."""
    row = model(**values, used=timezone.now())
    manager = model._default_manager.using(using)
    # MySQL and MariaDB name no conflict target: the primary key is the only unique one.
    target = ["key"] if connections[using].features.supports_update_conflicts_with_target else []
    manager.bulk_create([row], update_conflicts=True, unique_fields=target, update_fields=["used"])


class Slots(KeyHolds):
    """The task queryset's concurrency limits."""

    def _claim_within_limits(self, claim: Claim, queue_model: Any) -> list[Any]:
        """``claim``'s rows, inside its transaction: each queue with a limit
        (``FIREFLY_QUEUES``' ``"concurrency"``) claimed on its own, up to its free slots while
        its control row is held, then the other queues together; then :meth:`_admit`."""
        dialect = writing(self)
        limits = settings.QUEUE_LIMITS
        limited = sorted(q for q in claim.queues if q in limits)
        if not limited:
            return self._admit(dialect.claim(self.model, queue_model, claim), claim.now)
        rows: list[Any] = []
        controls = queue_model._default_manager.using(self.db)
        for queue in limited:
            if not controls.select_for_update().filter(name=queue).exists():
                controls.bulk_create([queue_model(name=queue)], ignore_conflicts=True)
                controls.select_for_update().filter(name=queue).exists()
            running = self._taken(queue=queue)
            room = min(limits[queue] - running, claim.limit - len(rows))
            if room > 0:
                one = dataclasses.replace(claim, queues=[queue], limit=room)
                rows += dialect.claim(self.model, queue_model, one)
        rest = [q for q in claim.queues if q not in limits]
        if rest and len(rows) < claim.limit:
            others = dataclasses.replace(claim, queues=rest, limit=claim.limit - len(rows))
            rows += dialect.claim(self.model, queue_model, others)
        return self._admit(rows, claim.now)

    def _admit(self, rows: list[Any], now: datetime.datetime) -> list[Any]:
        """Of rows just claimed (inside the claim's transaction), those their keys admit and
        their rate limits let start now; the others are parked or throttled, unclaimed."""
        return self._throttle(self._admit_to_slots(rows), now)

    def _throttle(self, rows: list[Any], now: datetime.datetime) -> list[Any]:
        return rows  # rate limits: firefly_tasks.rates

    def _admit_to_slots(self, rows: list[Any]) -> list[Any]:
        limited: dict[str, list[Any]] = {}
        for row in rows:
            if row.concurrency_key is not None:
                limited.setdefault(row.concurrency_key, []).append(row)
        if not limited:
            return rows
        parked: set[Any] = set()
        tasks = self._all()
        for key in sorted(limited):  # keys locked in one order: no deadlock between claims
            group = sorted(limited[key], key=lambda r: (-r.priority, r.not_before, r.pk))
            self._lock_key(key)
            limit = min(row.concurrency_limit or 1 for row in group)
            running = self._taken(concurrency_key=key)
            over = group[len(group) - min(max(running - limit, 0), len(group)) :]
            if over:
                tasks.filter(pk__in=[row.pk for row in over])._move(
                    Event.PARK, attempt=F("attempt") - 1, worker=None, started=None
                )
                parked.update(row.pk for row in over)
            if running - len(over) >= limit:
                self._park_waiting(key)
        return [row for row in rows if row.pk not in parked]

    def _park_waiting(self, key: str) -> None:
        """Park the waiting tasks of a full key (those no claim holds), a chunk at a time."""
        tasks = self._all()
        waiting = tasks.filter(concurrency_key=key, status=TaskStatus.CREATED)
        if writing(self).connection.features.has_select_for_update_skip_locked:
            waiting = waiting.select_for_update(skip_locked=True)
        ids = list(waiting.order_by().values_list("pk", flat=True)[:PARK_CHUNK])
        if ids:
            tasks.filter(pk__in=ids)._move(Event.PARK)

    def _free_slots(self, rows: Iterable[Any]) -> int:
        """Rows of this transaction left ``running``: let blocked tasks of their keys take
        the freed slots. Returns how many were unparked."""
        limits: dict[str, int] = {}
        for row in rows:
            if row.concurrency_key is not None:
                limit = row.concurrency_limit or 1
                limits[row.concurrency_key] = min(limits.get(row.concurrency_key, limit), limit)
        return sum(self._unpark(key, limits[key]) for key in sorted(limits))

    def _unpark(self, key: str, limit: int) -> int:
        tasks = self._all()
        with transaction.atomic(using=self.db):  # the caller's, where it has one
            self._lock_key(key)
            of_key = tasks.filter(concurrency_key=key)
            free = limit - self._taken(concurrency_key=key)
            if free > 0:  # tasks ready to be claimed take free slots first
                ready = of_key.filter(status=TaskStatus.CREATED, not_before__lte=timezone.now())
                free -= ready.order_by()[:free].count()
            if free <= 0:
                return 0
            # Not those waiting for other tasks (firefly_tasks.dependencies) too.
            blocked = of_key.filter(status=TaskStatus.BLOCKED, waiting_for=0)
            blocked = blocked.order_by(*RUN_ORDER)
            ids = list(blocked.values_list("pk", flat=True)[:free])
            return tasks.filter(pk__in=ids)._move(Event.UNPARK) if ids else 0

    def reconcile_slots(self) -> int:
        """Unpark what the free slots of every key with blocked tasks allow (maintenance);
        returns how many tasks were unparked."""
        blocked = self._all().filter(
            status=TaskStatus.BLOCKED, concurrency_key__isnull=False, waiting_for=0
        )
        # Threads of consumers that stopped or were found dead: they hold nothing now.
        self._stuck().exclude(worker__state__in=LIVE_WORKER_STATES).delete()
        keys = blocked.values_list("concurrency_key", "concurrency_limit").distinct()
        unparked = 0
        for key, limit in sorted(set(keys)):
            unparked += self._unpark(key, limit or 1)
        return unparked

    def stick(self, row: Any, worker: Any) -> None:
        """Record that a thread of ``worker`` is stuck in ``row``'s task, fenced (in the
        transaction that records its attempt): it keeps the slots it took."""
        self._stuck().create(
            task_id=row.pk,
            worker=worker,
            queue=row.queue,
            concurrency_key=row.concurrency_key,
            since=timezone.now(),
        )

    def unstick(self, row: Any, worker: Any) -> int:
        """The stuck thread of ``worker`` came back from ``row``'s task: free its slots."""
        with transaction.atomic(using=self.db):
            self._stuck().filter(task_id=row.pk, worker=worker).delete()
            return self._free_slots([row])

    def _taken(self, **where: str) -> int:
        """The slots taken among the tasks ``where`` selects: their running rows, and the
        threads of live consumers stuck in one of them (``StuckTask``)."""
        running = self._all().filter(status=TaskStatus.RUNNING, **where).count()
        stuck = self._stuck().filter(worker__state__in=LIVE_WORKER_STATES, **where).count()
        return int(running + stuck)

    def _lock_key(self, key: str) -> None:
        """Take the key's row until the transaction ends, creating it when first used: one
        upsert, which locks the row it finds or inserts (a read for update, then an insert,
        would deadlock two first users of a key on MariaDB)."""
        model = self.model._meta.apps.get_model("firefly_tasks", "ConcurrencyKey")
        hold(model, self.db, {"key": key})

    def _all(self) -> Any:
        """Every task, whatever this queryset selects."""
        return self.model._default_manager.using(self.db)
