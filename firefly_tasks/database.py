"""Which database Firefly works on: ``FIREFLY_DATABASE`` holds its tables and takes every
query of the engine, the consumer, maintenance and the dashboard; a task's own writes go
where the project's router sends them (``default``, for most projects).

With the queue on a database of its own, an atomic task's transaction spans both: the task's
writes on the default database, its completion on the queue's. :func:`task_transaction` opens
both and commits the default database's first, so that the one window left (a crash between
the two commits) runs the task again rather than marking done a task whose writes were lost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from firefly_tasks.conf import settings
from firefly_tasks.dialects import DIALECTS, Dialect, dialect


def alias() -> str:
    """The queue database's alias (``FIREFLY_DATABASE``)."""
    return settings.DATABASE


def queue_connection() -> Any:
    """This thread's connection to the queue database."""
    return connections[settings.DATABASE]


def atomic() -> transaction.Atomic:
    """``transaction.atomic()`` on the queue database."""
    return transaction.atomic(using=settings.DATABASE)


def separate() -> bool:
    """Whether the queue lives on a database other than the default one."""
    return settings.DATABASE != DEFAULT_DB_ALIAS


def task_dialect() -> Dialect | None:
    """The dialect of the connection a task's own writes go to (the default database's), or
    ``None`` when Firefly does not speak it (the queue may live on a supported one)."""
    connection = connections[DEFAULT_DB_ALIAS]
    return dialect(connection) if connection.vendor in DIALECTS else None


@contextlib.contextmanager
def task_transaction(queue: Dialect, *, lazily: bool) -> Iterator[None]:
    """The transaction an atomic task (or a group of them) runs in: one on the queue
    database (of ``queue``; begun at its first query if ``lazily``), and around the task's own
    writes one on the default database when the queue lives elsewhere. The completion is
    written inside both (fenced: a superseded attempt rolls both back); on the way out the
    default database commits first, then the queue's, so a crash between the two commits
    leaves the task running, to be recovered and run again, never completed without its writes.

    With two databases both begin at their first query, and where the queue's is SQLite (one
    write lock for the whole file) the task's first query on the default database begins the
    queue's transaction first: every consumer thread takes the two in the same order, so two
    of them never each hold one while waiting for the other."""
    if not separate():
        with queue.atomic_from_first_query() if lazily else transaction.atomic(using=alias()):
            yield
        return
    own = task_dialect()
    if own is None:
        with queue.atomic_from_first_query(), transaction.atomic(using=DEFAULT_DB_ALIAS):
            yield
        return
    # Pushed before the default database's transaction opens, so it runs before its BEGIN.
    first = queue.connection.vendor == "sqlite"
    if first:
        own.push_execute_wrapper(_QueueFirst(queue))
    try:
        with queue.atomic_from_first_query(), own.atomic_from_first_query():
            yield
    finally:
        if first:
            own.pop_execute_wrapper()


class _QueueFirst:
    """An execute wrapper on the default database's connection that, before its first query,
    begins the queue's transaction (an SQLite one begins at its first query)."""

    def __init__(self, queue: Dialect) -> None:
        self.queue: Dialect | None = queue

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if self.queue is not None:
            queue, self.queue = self.queue, None
            with queue.connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        return execute(sql, params, many, context)
