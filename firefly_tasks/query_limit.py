"""A task's queries bounded by what is left of its timeout (``dialects.statement_limits``):
a task blocked in a long query gets a database error at its deadline, and its thread comes
back to Python, where ``TaskTimeout`` is waiting for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from firefly_tasks.dialects import Dialect
from firefly_tasks.dialects.statement_limits import is_bounded

# A bound the database applies ends its statement at the deadline, as the client's clock
# reads it, give or take this much (the bound is rounded down to a millisecond).
SLACK = 0.05


class QueryLimit:
    """An execute wrapper, pushed while a task with a timeout runs.

    MariaDB bounds each statement by the time left when it starts. PostgreSQL bounds the
    statements of the task's transaction, from its first query on, by the time left then
    (``SET LOCAL``: it needs a transaction, so an ``atomic=False`` task's queries are not
    bounded), and :meth:`lift` takes the bound off once the task returned, before its
    completion is written in the same transaction.
    """

    def __init__(self, connection: Any, dialect: Dialect, seconds: float) -> None:
        self.connection = connection
        self.dialect = dialect
        self.deadline = time.monotonic() + seconds
        self.bounded_transaction = False

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if not is_bounded(sql):
            return execute(sql, params, many, context)
        left = self.deadline - time.monotonic()
        if not self.bounded_transaction and self.connection.in_atomic_block:
            bound = self.dialect.transaction_limit(left)
            if bound is not None:
                execute(bound, None, False, context)
                self.bounded_transaction = True
        return execute(self.dialect.bounded_statement(sql, left), params, many, context)

    def stopped(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a statement this limit bounded, stopped at the deadline: the
        task timed out, even if the watchdog has not raised it in the thread yet."""
        if time.monotonic() < self.deadline - SLACK:
            return False
        seen: BaseException | None = exc
        for _ in range(8):  # also when the task caught it and raised another
            if seen is None:
                break
            if self.dialect.is_statement_timeout(seen):
                return True
            seen = seen.__cause__ or seen.__context__
        return False

    def lift(self) -> None:
        """Take a transaction's bound off (after a task that returned)."""
        if self.bounded_transaction:
            with self.connection.cursor() as cursor:
                cursor.execute(self.dialect.transaction_limit(None))
            self.bounded_transaction = False
