"""A process pool child's board: what it executes, in memory it shares with its parent.

The child writes which task it executes, since when, its deadline and its place in the batch;
the parent reads them to supervise it (kill it past its timeout and grace) and, once it died,
to know which task it was running. The parent writes there which task to cancel. Each field is
a C double (integers up to 2**53 are exact), written without a lock: the parent reads them as
hints while the child runs, and as facts once it has exited.
"""

from __future__ import annotations

import math
from collections.abc import MutableSequence
from typing import Any

_FIELDS = (
    "pk",  # the task executing, or -1 between tasks
    "attempt",
    "started",  # when it started (a Unix timestamp)
    "deadline",  # when its timeout passes (time.monotonic(), the same clock in every process)
    "position",  # its index in the batch (or the last started one's, between tasks)
    "cancel_pk",  # the task the parent asks the child to stop (then SIGUSR1)
    "cancel_attempt",
    "ran",  # tasks started since the child started
    "drops",  # how many tasks of the batch the parent dropped (cancelled before they started)
    *(f"drop_{i}" for i in range(8)),  # the last 8 of them, a ring
)
DROP_RING = 8
_INDEX = {name: i for i, name in enumerate(_FIELDS)}
SIZE = len(_FIELDS)


class Board:
    """Named fields over a shared array of ``SIZE`` doubles (``multiprocessing.Array``)."""

    __slots__ = ("cells",)

    def __init__(self, cells: MutableSequence[float]) -> None:
        self.cells = cells

    def __getattr__(self, name: str) -> float:
        try:
            return float(self.cells[_INDEX[name]])
        except KeyError:
            raise AttributeError(name) from None

    def set(self, **fields: Any) -> None:
        for name, value in fields.items():
            self.cells[_INDEX[name]] = float(value)

    def clear(self) -> None:
        """Between batches: nothing executing, nothing to cancel."""
        self.set(pk=-1, attempt=0, started=0, deadline=math.inf, position=-1, cancel_pk=-1, drops=0)

    def drop(self, pk: int) -> None:
        """The parent: task ``pk`` of the batch must not start (then SIGUSR1)."""
        count = int(self.drops)
        self.cells[_INDEX[f"drop_{count % DROP_RING}"]] = float(pk)
        self.cells[_INDEX["drops"]] = float(count + 1)

    def dropped(self) -> frozenset[int]:
        """The child: the tasks of its batch that must not start (the last ``DROP_RING``:
        more cancels of one batch at once than that, and the others start and are fenced)."""
        count = min(int(self.drops), DROP_RING)
        return frozenset(int(self.cells[_INDEX[f"drop_{i}"]]) for i in range(count))

    def executing(self) -> tuple[int, int] | None:
        """The task executing, as ``(pk, attempt)``, if any."""
        pk = self.pk
        return None if pk < 0 else (int(pk), int(self.attempt))
