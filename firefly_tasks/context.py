"""The task running now, in this thread or coroutine: ``current_task()``."""

from __future__ import annotations

import contextvars
import datetime
import threading
from dataclasses import dataclass
from typing import Any

from firefly_tasks import deadlines, progress


@dataclass(frozen=True, slots=True)
class RunningTask:
    """What a task may know about its own run. The same object whichever pool runs it;
    later capabilities add fields here rather than new functions."""

    row: Any  # a TaskModel: not imported, for the models' own imports lead here
    """The task's row as it was claimed for this attempt (not refreshed while it runs)."""

    @property
    def id(self) -> int:
        return int(self.row.pk)

    @property
    def pk(self) -> int:
        return int(self.row.pk)

    @property
    def attempt(self) -> int:
        """Which run of the task this is, from 1."""
        return int(self.row.attempt)

    @property
    def queue(self) -> str:
        return str(self.row.queue)

    @property
    def scheduled_for(self) -> datetime.datetime | None:
        """The tick of a periodic schedule this run belongs to (None for any other task,
        and for a schedule's "run now")."""
        tick: datetime.datetime | None = self.row.scheduled_for
        return tick

    def set_progress(self, done: int, total: int | None = None, message: str = "") -> bool:
        """Say how far the task has got: ``done`` of ``total`` (any unit), and a short
        ``message``. Shown at once on the dashboard; throttled to two writes a second
        (``firefly_tasks.progress``). Whether it was written now."""
        return progress.report(self.row, done, total, message)

    @property
    def cancel_requested(self) -> bool:
        """Whether this run was cancelled (``cancel(running=True)``) and its consumer has been
        told: ``TaskCancelled`` (an ``@atask``: ``CancelledError`` at its ``await``) is on
        its way; a task that catches it can still look here."""
        if deadlines.async_cancelled((self.row.pk, self.row.attempt)):
            return True
        return deadlines.guard().cancelled(threading.get_ident())

    @property
    def name(self) -> str:
        """The task's stored name (``module.qualname``)."""
        return str(self.row.func_name)


current_task_var: contextvars.ContextVar[RunningTask | None] = contextvars.ContextVar(
    "firefly_current_task", default=None
)


def current_task() -> RunningTask | None:
    """The task running in this thread (or coroutine), or ``None`` outside a task's run."""
    return current_task_var.get()
