"""When a consumer last proved, in the database, that it was alive and still held its tasks.

The worker threads read it before each task to know, without a query, whether the tasks they
claimed may have been taken from them; the heartbeat keeps it up to date.
"""

from __future__ import annotations

import time
from collections.abc import MutableSequence

from firefly_tasks.clock import DatabaseNow
from firefly_tasks.models import WorkerModel
from firefly_tasks.states import LIVE_WORKER_STATES


class Liveness:
    """When this worker last proved, in the database, that it was alive and still held its
    tasks, on the monotonic clock.

    Other consumers recover a worker's tasks once its heartbeat is ``FIREFLY_WORKER_TIMEOUT``
    old by the database's clock. A heartbeat younger than the timeout less one interval
    means no one can have done so yet; an older one (the process was paused, or the database
    was unreachable) means the tasks must be checked before any starts. ``revivals`` counts
    the times this worker found itself declared dead: tasks claimed before one may be gone.
    """

    def __init__(self) -> None:
        self.proved_at = time.monotonic()
        self.revivals = 0

    def beat(self, worker_id: int, **fields: object) -> bool:
        """Record a heartbeat (and ``fields``) if the worker is still live; False if it was
        declared dead."""
        began = time.monotonic()  # no later than the database's stamp of this beat
        rows = WorkerModel.objects.filter(pk=worker_id, state__in=LIVE_WORKER_STATES)
        if not rows.update(last_heartbeat=DatabaseNow(), **fields):
            return False
        self.proved_at = began
        return True


class SharedLiveness(Liveness):
    """A :class:`Liveness` in memory a process pool's parent shares with its children (two
    doubles: ``proved_at``, ``revivals``): the parent's heartbeat keeps it, and the children's
    runners read it as threads read their process's."""

    def __init__(self, cells: MutableSequence[float]) -> None:
        self.cells = cells  # a child attaches to its parent's: nothing is reset here

    @classmethod
    def fresh(cls, cells: MutableSequence[float]) -> SharedLiveness:
        """The parent's, as :class:`Liveness` starts: proved now, never revived."""
        liveness = cls(cells)
        Liveness.__init__(liveness)
        return liveness

    @property
    def proved_at(self) -> float:
        return float(self.cells[0])

    @proved_at.setter
    def proved_at(self, value: float) -> None:
        self.cells[0] = value

    @property
    def revivals(self) -> int:
        return int(self.cells[1])

    @revivals.setter
    def revivals(self, value: int) -> None:
        self.cells[1] = value
