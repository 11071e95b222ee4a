"""How a task holds its unique key (``TaskModel.unique_hold``; ``firefly_tasks.uniqueness``).

A finished task lets go of its key lazily: nothing on the way to a finished state touches the
column (so a consumer's completion never waits on, nor deadlocks with, a call taking the
key), and a call that finds its key in a finished task's row (past its ``unique_for``, if it
has one) clears it there and takes it. The one exception is PostgreSQL's completion
(``dialects.postgresql``): when the completed row would no longer hold its key, the same
statement clears the column, and the row's new version enters no unique index, so nothing
waits. (Not on MariaDB, where that update locks the key's index entry, which a call's failed
insert may hold.) So the key is held exactly while the task is
unfinished, or within its period, or while a thread fenced in it may still be doing its work
(``StuckTask``)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from firefly_tasks.exceptions import UniqueKeyHeldError
from firefly_tasks.states import FINISHED_STATUSES, LIVE_WORKER_STATES, Event, sources
from firefly_tasks.task_reads import TaskReads


class KeyHolds(TaskReads):
    """The task queryset's reads and writes of unique keys."""

    def _requeue_keyed(self, changes: dict[str, Any], *, skip_held: bool) -> int:
        """Requeue the tasks with a unique key, each taking its key again (see
        ``TaskQuerySet.requeue``); how many were."""
        requeued = 0
        held: dict[int, int] = {}
        keyed = self.filter(status__in=sources(Event.REQUEUE), unique_key__isnull=False)
        for pk, key in keyed.order_by("pk").values_list("pk", "unique_key"):
            holder = self._take_key(pk, key, changes)
            if holder is None:
                requeued += 1
            elif holder:
                held[pk] = holder
        if held and not skip_held:
            raise UniqueKeyHeldError(held_message(held), held)
        return requeued

    def holder_of(self, key: str, *, lock: bool = False) -> Any:
        """The task holding the unique key ``key`` (unfinished, or finished within its
        ``unique_for``), or ``None`` when none does; a finished task that no longer holds it
        lets go of it here. Inside a transaction.

        A plain read: on MariaDB, a transaction whose insert found the key taken keeps a
        shared lock on the key's index entry, and waiting for a row lock then could deadlock.
        It sees what was committed when it began (under MariaDB's repeatable read, at this
        transaction's first read); if it finds nothing, ``lock`` reads the latest row."""
        tasks = self.model._default_manager.using(self.db)  # all of them, not this selection
        holder = tasks.filter(unique_hold=key).first()
        if holder is None and lock:
            holder = tasks.select_for_update().filter(unique_hold=key).first()
        if holder is not None and not holds(holder, timezone.now()) and not self._stuck_in(holder):
            tasks.filter(pk=holder.pk, unique_hold=key).update(unique_hold=None)
            return None
        return holder

    def _stuck(self) -> Any:
        """The threads fenced while still in a task (``StuckTask``)."""
        model = self.model._meta.apps.get_model("firefly_tasks", "StuckTask")
        return model._default_manager.using(self.db)

    def _stuck_in(self, row: Any) -> bool:
        """Whether a thread of a live consumer is still stuck in ``row``'s task: it keeps
        the task's unique key held, finished or not."""
        live = self._stuck().filter(task_id=row.pk, worker__state__in=LIVE_WORKER_STATES)
        return bool(live.exists())

    def _take_key(self, pk: int, key: str, changes: dict[str, Any]) -> int | None:
        """Requeue task ``pk`` holding ``key`` again: ``None`` if it was, else the id of the
        task that holds the key (0: the task moved on meanwhile)."""
        rows = self.model._default_manager.using(self.db).filter(pk=pk)
        for _ in range(3):
            try:
                with transaction.atomic(using=self.db):
                    moved = rows._move(Event.REQUEUE, unique_hold=key, **changes)
                return None if moved else 0
            except IntegrityError:
                holder = self.holder_of(key, lock=True)
                if holder is not None:
                    return int(holder.pk)
        return 0


def held_message(held: dict[int, int]) -> str:
    shown = ", ".join(f"task #{pk} by #{holder}" for pk, holder in list(held.items())[:5])
    more = f" and {len(held) - 5} more" if len(held) > 5 else ""
    return (
        f"Not requeued: an unfinished task holds the unique key of {len(held)} of them "
        f"({shown}{more}); cancel or finish the holder first, or requeue with skip_held=True."
    )


def holds(row: Any, now: Any) -> bool:
    """Whether ``row``, whose ``unique_hold`` is set, still holds its key at ``now``."""
    if row.status not in FINISHED_STATUSES:
        return True
    return row.unique_until is not None and row.unique_until > now
