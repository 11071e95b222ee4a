"""Per-minute rollups of finished attempts: how many completed, failed and were retried, and
how long they waited and ran, per queue and task.

Consumers write them as part of the transactions that record the outcomes (a group commit
writes its whole group's in one statement), so the figures are exact: a rolled-back group
counts nothing, and a committed one counts once. Each writer (a consumer thread, or a
process running tasks immediately) has rows of its own, keyed by ``(worker_id, slot)``, so
writers never wait for one another's row locks; readers sum the rows. The rows outlive the
tasks they count: pruning tasks keeps the history (``FIREFLY_ROLLUP_RETENTION`` bounds it).

Durations go to fixed histogram buckets (:data:`BOUNDS`, in seconds, upper bounds), enough
for percentiles within a bucket's width.
"""

from __future__ import annotations

import datetime
import itertools
import os
import threading
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps

from firefly_tasks.dialects import writing
from firefly_tasks.rows import Completion, TaskRow, WorkerRow

# Upper bounds of the duration buckets, in seconds; the last bucket is everything above.
BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 300, 1800)
BUCKETS = len(BOUNDS) + 1
FIRST = BOUNDS[0]
RUN_BUCKETS = tuple(f"run_b{i:02}" for i in range(BUCKETS))
WAIT_BUCKETS = tuple(f"wait_b{i:02}" for i in range(BUCKETS))
KEY = ("worker_id", "slot", "minute", "queue", "func_name")
COUNTS = ("completed", "failed", "retried", "run_seconds", "wait_seconds")
ADDED = COUNTS + RUN_BUCKETS + WAIT_BUCKETS
NO_WORKER = 0
MINUTE = datetime.timedelta(minutes=1)

_slots = threading.local()
_next_slot = itertools.count(1)


def use_slot(slot: int) -> None:
    """Make this thread write rollup rows under ``slot`` (a consumer's thread number)."""
    _slots.slot = slot


def current_slot() -> int:
    """This thread's slot: the one set by :func:`use_slot`, else one unique to this thread
    in this process (a process running tasks immediately has no worker row)."""
    slot: int | None = getattr(_slots, "slot", None)
    if slot is None:
        slot = _slots.slot = (os.getpid() << 20) | (next(_next_slot) & 0xFFFFF)
    return slot


@dataclass
class _Counts:
    completed: int = 0
    failed: int = 0
    retried: int = 0
    run_seconds: float = 0.0
    wait_seconds: float = 0.0
    run: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    wait: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def values(self) -> list[Any]:
        counts = [self.completed, self.failed, self.retried, self.run_seconds, self.wait_seconds]
        return counts + self.run + self.wait


class Tally:
    """The outcomes of one transaction, until :meth:`write` adds them to the rollups.

    This runs for every task on the consumer's hot path: a few hundred nanoseconds a task
    (the minute of the last row is kept, the function's own running time is reused)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[datetime.datetime, str, str], _Counts] = {}
        self._minute: datetime.datetime | None = None
        self._minute_end: datetime.datetime | None = None

    def __bool__(self) -> bool:
        return bool(self._counts)

    def completed(self, done: Iterable[Completion]) -> None:
        # _add() inlined: the rows of a group mostly share one minute, queue and task.
        last: tuple[datetime.datetime, str, str] | None = None
        counts = _Counts()
        minute, end = self._minute, self._minute_end
        for d in done:
            row, finished = d.row, d.finished
            if minute is None or end is None or not minute <= finished < end:
                minute = self._minute = finished.replace(second=0, microsecond=0)
                end = self._minute_end = minute + MINUTE
            key = (minute, row.queue, row.func_name)
            if key != last:
                found = self._counts.get(key)
                if found is None:
                    found = self._counts[key] = _Counts()
                counts, last = found, key
            counts.completed += 1
            started = row.started or finished
            run = row.run_seconds
            if run is None:
                run = (finished - started).total_seconds()
            wait = (started - row.not_before).total_seconds()
            if run > 0.0:
                counts.run_seconds += run
                counts.run[bisect_left(BOUNDS, run) if run > FIRST else 0] += 1
            else:
                counts.run[0] += 1
            if wait > 0.0:
                counts.wait_seconds += wait
                counts.wait[bisect_left(BOUNDS, wait) if wait > FIRST else 0] += 1
            else:
                counts.wait[0] += 1

    def failed(self, row: TaskRow, finished: datetime.datetime, *, retried: bool) -> None:
        counts = self._add(row, finished)
        if retried:
            counts.retried += 1
        else:
            counts.failed += 1

    def _add(self, row: TaskRow, finished: datetime.datetime) -> _Counts:
        minute, end = self._minute, self._minute_end
        if minute is None or end is None or not minute <= finished < end:
            minute = self._minute = finished.replace(second=0, microsecond=0)
            self._minute_end = minute + MINUTE
        key = (minute, row.queue, row.func_name)
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = _Counts()
        started = row.started or finished
        run = row.run_seconds
        if run is None:  # it never ran (its name or arguments could not be read)
            run = (finished - started).total_seconds()
        wait = (started - row.not_before).total_seconds()
        run = run if run > 0.0 else 0.0
        wait = wait if wait > 0.0 else 0.0
        counts.run_seconds += run
        counts.wait_seconds += wait
        counts.run[bisect_left(BOUNDS, run)] += 1
        counts.wait[bisect_left(BOUNDS, wait)] += 1
        return counts

    def write(self, using: str, worker: WorkerRow | None) -> None:
        """Add the tally to the rollup rows of this writer, in the caller's transaction."""
        if not self._counts:
            return
        model = apps.get_model("firefly_tasks", "TaskRollup")
        writer = (worker.pk if worker else NO_WORKER, current_slot())
        rows = [
            [*writer, minute, queue, name, *counts.values()]
            for (minute, queue, name), counts in self._counts.items()
        ]
        writing(model._default_manager.using(using)).add_to_rollups(model, KEY, ADDED, rows)
        self._counts.clear()


def prune(before: datetime.datetime, using: str = "default", chunk_size: int = 5000) -> int:
    """Delete the rollup rows of minutes before ``before``, in chunks; return how many went."""
    model = apps.get_model("firefly_tasks", "TaskRollup")
    rows = model._default_manager.using(using)
    deleted = 0
    while ids := list(rows.filter(minute__lt=before).values_list("pk", flat=True)[:chunk_size]):
        rows.filter(pk__in=ids).delete()
        deleted += len(ids)
    return deleted


def bucket_fields() -> tuple[str, ...]:
    """The histogram columns, run time first: what the model adds to itself."""
    return RUN_BUCKETS + WAIT_BUCKETS
