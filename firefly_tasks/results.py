"""What a task that waited for others receives of them, as its first argument: a chain's
next link the previous link's result, a group's callback its members' results in order
(docs/workflows.md).

They are read when the task runs, from the rows of the tasks it waited for, not copied into
its own: the transaction that promotes it stays one small ``UPDATE``. Results larger together
than ``FIREFLY_MAX_PAYLOAD_BYTES`` are not read at once: the callback gets a
:class:`GroupResults`, a sequence that reads them a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from django.db.models import Sum
from django.db.models.functions import Length

from firefly_tasks import database, serialization
from firefly_tasks.conf import settings
from firefly_tasks.models import TaskDependency
from firefly_tasks.states import Feed, TaskStatus

CHUNK = 500
_COLUMNS = (
    "parent_id",
    "parent__status",
    "parent__serializer",
    "parent__returned_data",
    "parent__error",
)


@dataclass(frozen=True)
class TaskFailure:
    """In a callback's results (``then(..., run_if_failed=True)``), a member that did not
    complete: its id, its final status (``failed`` or ``cancelled``) and its error."""

    task_id: int
    status: str
    error: str


class GroupResults(Sequence[Any]):
    """A group's results in order, read a chunk at a time: what a callback receives instead
    of a list when the results are too large to read at once. Each item is a member's
    result, or a :class:`TaskFailure`."""

    def __init__(self, task_id: int, using: str) -> None:
        self.task_id = task_id
        self._using = using
        self._length: int | None = None

    def __repr__(self) -> str:
        return f"<GroupResults of task #{self.task_id}: {len(self)} results>"

    def __len__(self) -> int:
        if self._length is None:
            self._length = _edges(self.task_id, self._using).count()
        return self._length

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("group result index out of range")
        (found,) = _read(_edges(self.task_id, self._using)[index : index + 1])
        return found

    def __iter__(self) -> Iterator[Any]:
        edges = _edges(self.task_id, self._using)
        for start in range(0, len(self), CHUNK):
            yield from _read(edges[start : start + CHUNK])


def received(row: Any) -> tuple[bool, Any]:
    """Whether the task of ``row`` receives something of the tasks it waited for, and what."""
    feed = row.feed
    if not feed:
        return False, None
    using = row._state.db or database.alias()
    edges = _edges(row.pk, using)
    if feed == Feed.RESULT:
        found = _read(edges[:1])
        return True, found[0] if found else None
    size = edges.aggregate(size=Sum(Length("parent__returned_data")))["size"] or 0
    if size > settings.MAX_PAYLOAD_BYTES:
        return True, GroupResults(row.pk, using)
    return True, _read(edges)


def _edges(task_id: int, using: str) -> Any:
    edges = TaskDependency.objects.using(using).filter(child_id=task_id)
    return edges.order_by("position", "parent_id")


def _read(edges: Any) -> list[Any]:
    found = []
    for task_id, status, serializer, returned, error in edges.values_list(*_COLUMNS):
        if status == TaskStatus.COMPLETED:
            found.append(None if returned is None else serialization.loads(returned, serializer))
        else:
            found.append(TaskFailure(task_id, status, error))
    return found
