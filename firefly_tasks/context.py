"""The task running now, in this thread or coroutine: ``current_task()``."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firefly_tasks.models import TaskModel

current_task_var: contextvars.ContextVar[TaskModel | None] = contextvars.ContextVar(
    "firefly_current_task", default=None
)


def current_task() -> TaskModel | None:
    """The row of the task running in this thread (or coroutine), if any."""
    return current_task_var.get()
