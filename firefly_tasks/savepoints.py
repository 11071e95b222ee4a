"""A savepoint opened at a task's first query, so that fast tasks sharing one transaction
are isolated from each other's failures, and those that never query pay nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from firefly_tasks.dialects import Dialect


class LazySavepoint:
    """An execute wrapper that opens a savepoint before a task's first query, if any.

    Most fast tasks never query, so they pay nothing for the isolation from their group.
    """

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect
        self.sid: str | None = None
        self._opening = False
        # on_commit callbacks the task registers before its first query are not tied to
        # the savepoint: remember where they start, to discard them on rollback.
        self._callbacks_mark = dialect.on_commit_mark()

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        # Not before a BEGIN: where a transaction begins at its first query (SQLite's, with
        # atomic_from_first_query), that BEGIN passes through here first.
        if self.sid is None and not self._opening and not sql.startswith("BEGIN"):
            self._opening = True
            try:
                self.sid = self.dialect.savepoint()
                if self.sid is not None:
                    self.dialect.track_savepoint(self.sid)
            finally:
                self._opening = False
        return execute(sql, params, many, context)

    def release(self) -> None:
        if self.sid is None:
            return
        if transaction.get_rollback(using=self.connection.alias):
            raise transaction.TransactionManagementError(
                "The task swallowed a database error inside an atomic block; its writes are "
                "rolled back."
            )
        transaction.savepoint_commit(self.sid, using=self.connection.alias)
        self.forget()

    def rollback(self) -> None:
        if self.sid is not None:
            transaction.savepoint_rollback(self.sid, using=self.connection.alias)
            transaction.set_rollback(False, using=self.connection.alias)
            self.forget()
        self.dialect.discard_on_commit(self._callbacks_mark)

    def forget(self) -> None:
        self.dialect.forget_savepoint(self.sid)
        self.sid = None


class Savepoints:
    """A :class:`LazySavepoint` on each connection a task of a group writes to: its own
    database's and, where the queue lives on another, the queue's (a task may schedule
    tasks). Entered around the task, so each connection's queries open its savepoint."""

    def __init__(self, dialects: tuple[Dialect, ...]) -> None:
        self.each = [LazySavepoint(d.connection, d) for d in dialects]

    def __enter__(self) -> Savepoints:
        for savepoint in self.each:
            savepoint.dialect.push_execute_wrapper(savepoint)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for savepoint in self.each:
            savepoint.dialect.pop_execute_wrapper()
            # On a lost connection the savepoint is gone with it; Django must not see its id
            # when the group's atomic block exits, or it would think it is still nested.
            savepoint.forget()

    def release(self) -> None:
        for savepoint in self.each:
            savepoint.release()

    def rollback(self) -> None:
        for savepoint in self.each:
            savepoint.rollback()
