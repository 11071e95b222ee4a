"""Waiting for a task's result: ``row.wait_result(timeout=10)`` and
``await row.await_result(timeout=10)`` (docs/workflows.md, "Waiting for a result").

On PostgreSQL the waiter LISTENs on a connection of its own and marks the row ``awaited``; a
trigger NOTIFYs when an awaited row reaches a final state, so only rows someone waits on
notify (a notifying transaction serializes its commit with the others'). Elsewhere, and as the
fallback, it polls, from 5 ms up to ``MAX_POLL`` apart.
"""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

from firefly_tasks import database
from firefly_tasks.conf import settings
from firefly_tasks.context import current_task_var
from firefly_tasks.dialects import dialect
from firefly_tasks.exceptions import FireflyError, TaskFailedError
from firefly_tasks.states import FINISHED_STATUSES, TaskStatus

T = TypeVar("T")

FIRST_POLL = 0.005
MAX_POLL = 0.25
# How long a waiter sleeps on its LISTEN socket before it looks at the row again anyway: a
# notification lost with a connection costs no more than this.
LISTEN_CHECK = 1.0
FIELDS = ["status", "returned_data", "serializer", "error", "traceback", "completed", "failed"]


class WaitError(FireflyError, RuntimeError):
    """``wait_result()`` was called where waiting cannot work."""


class ResultTimeout(FireflyError, TimeoutError):
    """The task did not finish within the wait's timeout."""


def wait_result(row: Any, timeout: float = 10.0, *, raise_on_failure: bool = False) -> Any:
    """Wait until the task of ``row`` finished, up to ``timeout`` seconds, and return its
    result (``None`` for a task that failed or was cancelled, unless ``raise_on_failure``:
    then ``TaskFailedError``). ``ResultTimeout`` when it has not finished by then."""
    if current_task_var.get() is not None:
        raise WaitError(
            "wait_result() inside a task would hold the consumer's thread while another task "
            "runs (or never does): chain the next step instead (chain(), group().then(), "
            "using(depends_on=...))."
        )
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout < 0:
        raise ValueError(f"timeout must be a non-negative number of seconds, not {timeout!r}.")
    using = row._state.db or database.alias()
    if _finished(row):
        return _outcome(row, raise_on_failure)
    _check_transaction(row, using)
    deadline = time.monotonic() + timeout
    with _listening(row, using) as listener:
        delay = FIRST_POLL
        while not _finished(row):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResultTimeout(
                    f"Task #{row.pk} ({row.func_name}) is still {row.status} after {timeout:g} s."
                )
            if listener is not None:
                raw, where = listener
                readable, _, _ = select.select([raw.fileno()], [], [], min(remaining, LISTEN_CHECK))
                if readable:
                    where.notified(raw)
            else:
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, MAX_POLL)
    return _outcome(row, raise_on_failure)


async def await_result(row: Any, timeout: float = 10.0, *, raise_on_failure: bool = False) -> Any:
    """:func:`wait_result` for async code (see :func:`in_own_thread`)."""
    return await in_own_thread(wait_result, row, timeout, raise_on_failure=raise_on_failure)


async def in_own_thread(wait: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the blocking ``wait`` in a thread of its own, with its own database connections,
    closed when it returns: an event loop's threads must not wait, and a pool thread must not
    keep a connection open after."""

    def call() -> T:
        try:
            return wait(*args, **kwargs)
        finally:
            connections.close_all()  # this worker thread's only

    return await sync_to_async(call, thread_sensitive=False)()


def _finished(row: Any) -> bool:
    row.refresh_from_db(fields=FIELDS)
    return row.status in FINISHED_STATUSES


def _outcome(row: Any, raise_on_failure: bool) -> Any:
    if row.status == TaskStatus.COMPLETED:
        return row.returned
    if raise_on_failure:
        raise TaskFailedError(
            f"Task #{row.pk} ({row.func_name}) {row.status}: {row.error or 'no error recorded'}",
            row,
        )
    return None


def _check_transaction(row: Any, using: str) -> None:
    """Refuse to wait where the task cannot be seen to finish: for a row this transaction
    inserted (no consumer can see it before the commit), and in any transaction on SQLite
    (it holds the write lock a consumer needs to finish the task) or MariaDB (its repeatable
    read never sees the task finish)."""
    connection = connections[using]
    if not connection.in_atomic_block:
        return
    if row.uncommitted or connection.vendor in ("sqlite", "mysql"):
        why = (
            "it was scheduled in this transaction, which no consumer can see before it commits"
            if row.uncommitted
            else f"on {connection.vendor}, a transaction never sees the task finish"
        )
        raise WaitError(
            f"wait_result() for task #{row.pk} inside a transaction: {why}. Wait after the "
            "commit (transaction.on_commit) or outside transaction.atomic()."
        )


@contextlib.contextmanager
def _listening(row: Any, using: str) -> Any:
    """On PostgreSQL, a connection listening for the row's end (its row marked awaited
    after the LISTEN: a notification between the two would be lost); else ``None``."""
    where = dialect(connections[using])
    if not (settings.LISTEN_NOTIFY and where.can_listen()):
        yield None
        return
    raw = where.listen(result_of=(type(row), row.pk))
    try:
        yield raw, where
    finally:
        raw.close()
