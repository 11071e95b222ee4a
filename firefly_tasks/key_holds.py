"""How a task holds its unique key (``TaskModel.unique_hold``; ``firefly_tasks.uniqueness``):
let go of when the task finishes, unless held for a period (``unique_for``), and taken again
when it is requeued."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, CharField, F, Value, When
from django.utils import timezone

from firefly_tasks.exceptions import UniqueKeyHeldError
from firefly_tasks.states import FINISHED_STATUSES, Event, sources
from firefly_tasks.task_reads import TaskReads

# What a transition to a finished state sets, in SQL (a dialect's completion) and as an
# expression (``TaskQuerySet._move``).
RELEASE_HOLD = "unique_hold = CASE WHEN unique_until IS NULL THEN NULL ELSE unique_hold END"
RELEASED_HOLD = Case(
    When(unique_until__isnull=True, then=Value(None, output_field=CharField())),
    default=F("unique_hold"),
)


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

    def holder_of(self, key: str) -> Any:
        """The task holding the unique key ``key``, locked until the transaction ends; or
        ``None`` when none does. A finished task whose ``unique_for`` is over lets go of the
        key here. Inside a transaction."""
        tasks = self.model._default_manager.using(self.db)  # all of them, not this selection
        holder = tasks.select_for_update().filter(unique_hold=key).first()
        if (
            holder is not None
            and holder.status in FINISHED_STATUSES
            and holder.unique_until is not None
            and holder.unique_until <= timezone.now()
        ):
            tasks.filter(pk=holder.pk, unique_hold=key).update(unique_hold=None)
            return None
        return holder

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
                holder = self.holder_of(key)
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
