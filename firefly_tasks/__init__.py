"""Firefly: background tasks for Django that live in your database."""

from __future__ import annotations

from firefly_tasks.context import current_task
from firefly_tasks.declarations import periodic
from firefly_tasks.decorators import atask, task
from firefly_tasks.exceptions import Snooze, snooze

__all__ = ["Snooze", "atask", "current_task", "periodic", "snooze", "task"]
__version__ = "0.1.0.dev0"
