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
        if self.sid is None and not self._opening:
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
