"""Django's private bookkeeping of transactions, for what the consumer does outside
``atomic()``: savepoints opened lazily, ``on_commit`` callbacks to drop, execute wrappers
pushed per task. Part of every dialect (``Dialect`` inherits it); the only code that touches
these attributes of a connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from django.db import transaction


class TransactionBookkeeping:
    connection: Any

    @contextlib.contextmanager
    def atomic_from_first_query(self) -> Iterator[None]:
        """``transaction.atomic()`` whose transaction begins no earlier than its first query.
        Only SQLite begins one (and takes its write lock) when the block opens."""
        with transaction.atomic(using=self.connection.alias):
            yield

    # Savepoints, and Django's private bookkeeping of them, for a lazily opened savepoint.

    def savepoint(self) -> str | None:
        """A new savepoint's id: ``transaction.savepoint_create()`` from Django 6.1 (which
        deprecates ``savepoint()``), ``transaction.savepoint()`` before."""
        create = getattr(transaction, "savepoint_create", None) or transaction.savepoint
        sid: str | None = create(using=self.connection.alias)
        return sid

    def on_commit_mark(self) -> int:
        """Where the ``on_commit`` callbacks registered from now on start."""
        return len(self.connection.run_on_commit)

    def discard_on_commit(self, mark: int) -> None:
        """Drop the ``on_commit`` callbacks registered since ``mark``."""
        del self.connection.run_on_commit[mark:]

    def track_savepoint(self, sid: str) -> None:
        """Make a savepoint opened outside ``atomic()`` known to Django, so that ``on_commit``
        callbacks registered after it are discarded if it is rolled back."""
        self.connection.savepoint_ids.append(sid)

    def forget_savepoint(self, sid: str | None) -> None:
        if sid in self.connection.savepoint_ids:
            self.connection.savepoint_ids.remove(sid)

    def push_execute_wrapper(self, wrapper: Callable[..., Any]) -> None:
        """As ``connection.execute_wrapper()`` enters, without a generator per task."""
        self.connection.execute_wrappers.append(wrapper)

    def pop_execute_wrapper(self) -> None:
        self.connection.execute_wrappers.pop()
