"""Transactions of Firefly's own that the database may pick as a deadlock's victim (MariaDB
locks index entries, so two claims of one concurrency key, or two inserts of one unique key,
can deadlock where PostgreSQL would wait): run again, as the database asks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError, connections, transaction

from firefly_tasks.dialects import dialect

T = TypeVar("T")

TRIES = 5


def atomic_retried(using: str, work: Callable[[], T], *, tries: int = TRIES) -> T:
    """``work()`` in a transaction, run again (``tries`` times in all) when the
    database rolls it back to break a deadlock. Inside a caller's transaction, once: the
    deadlock rolls the caller's back too, so only the caller can run it again."""
    connection = connections[using]
    if connection.in_atomic_block:
        with transaction.atomic(using=using):
            return work()
    for tries_left in reversed(range(tries)):
        try:
            with transaction.atomic(using=using):
                return work()
        except OperationalError as exc:
            if not tries_left or not dialect(connection).is_deadlock(exc):
                raise
    raise AssertionError("unreachable")
