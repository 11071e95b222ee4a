"""Workflows on the task queryset: a task that waits for others (a chain's next link, a
group's callback, a ``depends_on``) is ``blocked`` until each of them finished (docs/workflows.md).

The waiting task counts the tasks it still waits for in ``waiting_for``; an edge
(``TaskDependency``) joins it to each. The transaction that records a task's final outcome
(completed, failed for good, cancelled) also reads its edges, and takes their number off each
dependant's count (``UPDATE ... SET waiting_for = waiting_for - k``, a dependant at a time, in
id order); the transaction that takes the count to zero moves the dependant to ``created``, so
it is promoted exactly once whichever of its last tasks commits first, and nothing recounts or
polls. A task that failed for good cancels its dependants instead (unless they run whatever
happened, ``run_if_failed``), and their dependants in turn.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from django.utils import timezone

from firefly_tasks.dialects import writing
from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.options import OPTION_ENGINES
from firefly_tasks.rates import RateLimits
from firefly_tasks.states import FINISHED_STATUSES, Event, TaskStatus, source, target

logger = logging.getLogger("firefly_tasks")

WORKFLOW_ENGINE = OPTION_ENGINES["depends_on"]
"""The engine version that settles edges: every task of a workflow needs it."""

WorkflowEdges = Sequence[tuple[int, int]]
"""A waiting task's edges: (the id of a task it waits for, the position of its result)."""


class Dependencies(RateLimits):
    """The task queryset's workflows: waiting, settling, promoting."""

    def insert_waiting(self, row: Any, edges: WorkflowEdges, *, fresh: Iterable[int] = ()) -> Any:
        """Insert the unsaved ``row``, waiting for the tasks ``edges`` name, and its edges.

        The tasks it waits for are locked while it is inserted, so that one finishing
        meanwhile cannot strand it: those already finished count at once (one that failed
        for good cancels it, unless ``row.run_if_failed``). ``fresh`` names tasks inserted
        in this transaction, unfinished by construction: they are not read again. Raises
        ``InvalidTaskError`` for an unknown id; call it inside a transaction."""
        edge = edge_model(self)
        fresh_ids = set(fresh)
        ids = sorted({pk for pk, _ in edges})
        known = {pk: TaskStatus.CREATED.value for pk in ids if pk in fresh_ids}
        others = [pk for pk in ids if pk not in fresh_ids]
        if others:
            locked = self._all().filter(pk__in=others).select_for_update().order_by("pk")
            known.update(locked.values_list("pk", "status"))
            # Only consumers that settle edges may run them from now on.
            unclaimed = locked.filter(status__in=(TaskStatus.CREATED, TaskStatus.BLOCKED))
            unclaimed.filter(min_engine__lt=WORKFLOW_ENGINE).update(min_engine=WORKFLOW_ENGINE)
        unknown = [pk for pk in ids if pk not in known]
        if unknown:
            raise InvalidTaskError(f"depends_on names tasks that do not exist: {unknown}.")
        finished = {pk for pk, status in known.items() if status in FINISHED_STATUSES}
        failed = [pk for pk in sorted(finished) if known[pk] != TaskStatus.COMPLETED]
        row.waiting_for = len(ids) - len(finished)
        status = TaskStatus.BLOCKED if row.waiting_for else TaskStatus.CREATED
        if failed and not row.run_if_failed:
            status, row.cancelled = TaskStatus.CANCELLED, timezone.now()
            row.error = _failed_error(failed)
        (row,) = self._all().insert_calls([row], status=status)
        writing(self).insert_edges(edge, row.pk, edges)
        return row

    def _settle(self, ids: Iterable[int], *, succeeded: bool) -> list[int]:
        """Tasks ``ids`` reached their final outcome in this transaction: settle their edges,
        promoting the dependants waiting for nothing more, or, as they failed, cancelling the
        dependants that need them to succeed, and theirs after them. Returns the ids of the
        tasks it cancelled."""
        pending = [(sorted(ids), succeeded)]
        cancelled_all: list[int] = []
        while pending:
            parents, ok = pending.pop()
            if not parents:
                continue
            found = writing(self).children_of(edge_model(self), parents)
            if not found:
                continue
            counts = Counter(child for _, child in found)
            if not ok:
                cancelled = self._cancel_waiting(sorted(counts), [p for p, _ in found])
                for child in cancelled:
                    del counts[child]
                pending.append((cancelled, False))
                cancelled_all += cancelled
            for child in sorted(counts):
                if self._count_down(child, counts[child]):
                    logger.debug("task promoted id=%s", child)
        return cancelled_all

    def _count_again(self, ids: list[int]) -> None:
        """Of tasks ``ids``, those this transaction requeued: the waiting tasks that had
        counted them finished count them again."""
        again = self._all().filter(pk__in=ids, status=target(Event.REQUEUE)) if ids else None
        requeued = sorted(again.values_list("pk", flat=True)) if again is not None else []
        found = writing(self).children_of(edge_model(self), requeued) if requeued else []
        counts = Counter(child for _, child in found)
        for child in sorted(counts):
            writing(self).count_down(self.model, child, -counts[child], source(Event.PROMOTE))

    def _waited_for(self, states: tuple[TaskStatus, ...]) -> list[int]:
        """The tasks of this queryset in ``states`` that other tasks wait for, locked."""
        waited_for = edge_model(self)._default_manager.using(self.db).values("parent_id")
        found = self.filter(status__in=states, pk__in=waited_for).select_for_update()
        return list(found.order_by("pk").values_list("pk", flat=True))

    def _count_down(self, child: int, settled: int) -> bool:
        """Take ``settled`` off a waiting task's count, and promote it if that was the last:
        the decrement holds its row until this transaction ends, so whichever transaction
        takes the count to zero is the one that sees it there. Whether this one did."""
        waiting = source(Event.PROMOTE)
        left = writing(self).count_down(self.model, child, settled, waiting)
        if left is None or left > 0:
            return False
        return bool(self._all().filter(pk=child, status=waiting)._move(Event.PROMOTE))

    def _cancel_waiting(self, children: list[int], failed: list[int]) -> list[int]:
        """Cancel the waiting tasks of ``children`` that need their tasks to succeed; the ids
        of those cancelled."""
        # By primary key only, row by row: a range over the status index would lock index
        # entries that a completion of another member holds (a deadlock on MariaDB).
        locked = self._all().filter(pk__in=children).select_for_update().order_by("pk")
        found = locked.values_list("pk", "status", "run_if_failed")
        ids = [pk for pk, status, runs in found if status == TaskStatus.BLOCKED and not runs]
        error, now = _failed_error(failed), timezone.now()
        return [
            pk
            for pk in ids
            if self._all().filter(pk=pk)._move(Event.CANCEL, cancelled=now, error=error)
        ]


def _failed_error(failed: list[int]) -> str:
    shown = ", ".join(f"#{pk}" for pk in failed[:5]) + (", ..." if len(failed) > 5 else "")
    return f"DependencyFailed: a task it waits for did not complete ({shown})"


def edge_model(queryset: Any) -> Any:
    return queryset.model._meta.apps.get_model("firefly_tasks", "TaskDependency")
