"""Firefly: background tasks for Django that live in your database."""

from __future__ import annotations

from typing import Any

from firefly_tasks.context import current_task
from firefly_tasks.declarations import periodic
from firefly_tasks.decorators import atask, task
from firefly_tasks.exceptions import Snooze, snooze

__all__ = ["Snooze", "atask", "chain", "current_task", "group", "periodic", "snooze", "task"]

_WORKFLOWS = ("chain", "group")


def __getattr__(name: str) -> Any:
    # ``chain`` and ``group`` store rows: importing their module needs the app registry,
    # which is not ready while Django imports this package as an installed app.
    if name in _WORKFLOWS:
        from firefly_tasks import workflows

        return getattr(workflows, name)
    raise AttributeError(f"module 'firefly_tasks' has no attribute {name!r}")


__version__ = "0.1.0.dev0"
