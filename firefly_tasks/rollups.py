"""Per-minute rollups of finished attempts: how many completed, failed and were retried, and
how long they waited and ran, per queue and task.

Consumers write them as part of the transactions that record the outcomes (a group commit
writes its whole group's in one statement), so the figures are exact: a rolled-back group
counts nothing, and a committed one counts once. Each writer (a consumer thread, or a
process running tasks immediately) has rows of its own, keyed by ``(worker_id, slot)``, so
writers never wait for one another's row locks; readers sum the rows. The rows outlive the
tasks they count: pruning tasks keeps the history (``FIREFLY_ROLLUP_RETENTION_DAYS`` bounds it).

Durations go to fixed histogram buckets (:data:`BOUNDS`, in seconds, upper bounds), enough
for percentiles within a bucket's width.
"""

from __future__ import annotations

import datetime
import itertools
import operator
import os
import threading
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from django.apps import apps

from firefly_tasks import database
from firefly_tasks.dialects import RollupRows, writing
from firefly_tasks.rows import Completion, TaskRow, WorkerRow

# Upper bounds of the duration buckets, in seconds; the last bucket is everything above.
BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 300, 1800)
BUCKETS = len(BOUNDS) + 1
RUN_BUCKETS = tuple(f"run_b{i:02}" for i in range(BUCKETS))
WAIT_BUCKETS = tuple(f"wait_b{i:02}" for i in range(BUCKETS))
KEY = ("worker_id", "slot", "minute", "queue", "func_name")
COUNTS = ("completed", "failed", "retried", "run_seconds", "wait_seconds")
ADDED = COUNTS + RUN_BUCKETS + WAIT_BUCKETS
NO_WORKER = 0

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


_row = attrgetter("row")
_finished = attrgetter("finished")
_started = attrgetter("started")
_not_before = attrgetter("not_before")
_run = attrgetter("run_seconds")
_queue = attrgetter("queue")
_task = attrgetter("func_name")
_seconds = datetime.timedelta.total_seconds


def _minute(moment: datetime.datetime) -> datetime.datetime:
    return moment.replace(second=0, microsecond=0)


def _count(buckets: list[int], values: list[float]) -> float:
    """Add ``values`` to the histogram ``buckets``; return their sum, negatives (clock skew)
    counted as 0. Sorted first, so the buckets take one search each, not one per value: the
    tally costs little more than reading the rows."""
    values.sort()
    below = 0
    for i, bound in enumerate(BOUNDS):
        upto = bisect_right(values, bound, below)
        buckets[i] += upto - below
        below = upto
        if below == len(values):
            break
    else:
        buckets[-1] += len(values) - below
    if values and values[0] < 0.0:
        return sum(values[bisect_right(values, 0.0) :])
    return sum(values)


@dataclass
class _Counts:
    completed: int = 0
    failed: int = 0
    retried: int = 0
    run_seconds: float = 0.0
    wait_seconds: float = 0.0
    run: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    wait: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add_durations(self, rows: list[TaskRow], finished: list[datetime.datetime]) -> None:
        """Count how long each of ``rows`` waited and ran (its attempt ended at the same index
        of ``finished``). Run time is the function's own, else (it never ran: its name or
        arguments could not be read) from the attempt's start to its end."""
        starts = list(map(_started, rows))
        if None in starts:
            starts = [s or f for s, f in zip(starts, finished, strict=True)]
        runs = list(map(_run, rows))
        if None in runs:
            runs = [
                (f - s).total_seconds() if r is None else r
                for r, s, f in zip(runs, starts, finished, strict=True)
            ]
        waits = list(map(_seconds, map(operator.sub, starts, map(_not_before, rows))))
        self.run_seconds += _count(self.run, runs)
        self.wait_seconds += _count(self.wait, waits)

    def values(self) -> list[Any]:
        counts = [self.completed, self.failed, self.retried, self.run_seconds, self.wait_seconds]
        return counts + self.run + self.wait


class Tally:
    """The outcomes of one transaction, until :meth:`take` hands them to the statement that
    adds them to the rollups (or :meth:`write` runs it).

    This runs for every task on the consumer's hot path: a group's rows mostly share one
    minute, queue and task, and are then counted together, in a few passes over lists."""

    def __init__(self) -> None:
        self._counts: dict[tuple[datetime.datetime, str, str], _Counts] = {}

    def __bool__(self) -> bool:
        return bool(self._counts)

    def completed(self, done: list[Completion]) -> None:
        rows, finished = list(map(_row, done)), list(map(_finished, done))
        for key, (some, ended) in _by_key(rows, finished):
            counts = self._counts_of(key)
            counts.completed += len(some)
            counts.add_durations(some, ended)

    def failed(self, row: TaskRow, finished: datetime.datetime, *, retried: bool) -> None:
        counts = self._counts_of((_minute(finished), row.queue, row.func_name))
        counts.add_durations([row], [finished])
        if retried:
            counts.retried += 1
        else:
            counts.failed += 1

    def _counts_of(self, key: tuple[datetime.datetime, str, str]) -> _Counts:
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = _Counts()
        return counts

    def take(self, worker: WorkerRow | None) -> RollupRows | None:
        """The tally as rows of this writer's rollups (None if it is empty), and empty it.
        The rows name only the columns some row adds to: the statement is shorter, and
        cheaper for the database, than one adding zeros to the thirty-odd others."""
        if not self._counts:
            return None
        writer = (worker.pk if worker else NO_WORKER, current_slot())
        keys = list(self._counts)
        table = [counts.values() for counts in self._counts.values()]
        self._counts.clear()
        columns = table[0] if len(table) == 1 else [any(c) for c in zip(*table, strict=True)]
        used = [i for i, value in enumerate(columns) if value]
        added = tuple(ADDED[i] for i in used)
        return RollupRows(
            model=apps.get_model("firefly_tasks", "TaskRollup"),
            key=KEY,
            added=added,
            zeros=tuple(name for name in ADDED if name not in added),
            rows=[
                [*writer, *key, *(values[i] for i in used)]
                for key, values in zip(keys, table, strict=True)
            ],
        )

    def write(self, using: str, worker: WorkerRow | None) -> None:
        """Add the tally to the rollup rows of this writer, in the caller's transaction."""
        rollup = self.take(worker)
        if rollup:
            model = rollup.model
            writing(model._default_manager.using(using)).add_to_rollups(rollup)


def _by_key(
    rows: list[TaskRow], finished: list[datetime.datetime]
) -> Iterable[tuple[tuple[datetime.datetime, str, str], tuple[list[TaskRow], list[Any]]]]:
    """``rows`` and their ``finished`` split by minute, queue and task: one part, nearly
    always (told without a loop in Python)."""
    if not rows:
        return []
    first = _minute(min(finished))
    if (
        first == _minute(max(finished))
        and len(set(map(_queue, rows))) == 1
        and len(set(map(_task, rows))) == 1
    ):
        return [((first, rows[0].queue, rows[0].func_name), (rows, finished))]
    parts: dict[tuple[datetime.datetime, str, str], tuple[list[TaskRow], list[Any]]] = {}
    for row, ended in zip(rows, finished, strict=True):
        part = parts.setdefault((_minute(ended), row.queue, row.func_name), ([], []))
        part[0].append(row)
        part[1].append(ended)
    return parts.items()


def prune(before: datetime.datetime, using: str | None = None, chunk_size: int = 5000) -> int:
    """Delete the rollup rows of minutes before ``before``, in chunks; return how many went."""
    using = using or database.alias()
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
