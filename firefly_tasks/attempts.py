"""What the end of an attempt means for the next one: how long a failed task waits before its
retry, and the error recorded for an attempt that never finished."""

from __future__ import annotations

import datetime

from firefly_tasks.conf import settings
from firefly_tasks.rows import TaskRow
from firefly_tasks.states import AttemptOutcome


def retry_delay(row: TaskRow) -> datetime.timedelta:
    """Delay before the next retry: fixed, or doubling per retry with ``retry_backoff``."""
    seconds = row.retry_delay
    if row.retry_backoff:
        seconds = min(seconds * 2**row.retry_attempts, settings.RETRY_BACKOFF_MAX)
    return datetime.timedelta(seconds=seconds)


def recovery_error(outcome: str, charged: bool, orphan: bool, restarted: bool) -> str:
    """The error recorded for an attempt ``recover()`` ends: ``charged`` to the task, of an
    ``orphan`` (no live worker held it), of a worker silent since the database ``restarted``."""
    if outcome == AttemptOutcome.INTERRUPTED:
        error = "Interrupted: the worker stopped before the task finished"
    elif restarted:
        return (
            "Released: the worker holding this task fell silent when the database server "
            "restarted; not charged, and it runs alone next time"
        )
    elif orphan:
        error = "the task was left running with no live worker"
    else:
        error = "the worker holding this task stopped sending heartbeats"
    if charged:
        return f"WorkerLost: {error}, while the task ran alone"
    if outcome == AttemptOutcome.RELEASED:
        return (
            f"Released: {error}, before the task was known to start; not charged, and it runs "
            "alone next time"
        )
    return error
