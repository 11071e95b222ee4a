"""Bounding a task's queries by what is left of its timeout, so that a task blocked in a long
query gets an error at its deadline instead of holding its thread (docs/timeouts.md). Part of
every dialect (``Dialect`` inherits it): MariaDB bounds each statement (``SET STATEMENT
max_statement_time=... FOR``), PostgreSQL the task's transaction (``SET LOCAL
statement_timeout``, which survives a transaction pooler), SQLite nothing.
"""

from __future__ import annotations

# Statements a bound applies to: a task's own queries, not the savepoints around them.
BOUNDED = ("select", "insert", "update", "delete", "replace", "with")


class StatementLimits:
    def bounded_statement(self, sql: str, seconds: float) -> str:
        """``sql``, to be stopped by the database after ``seconds`` where it can bound one
        statement (else ``sql`` as it is)."""
        return sql

    def transaction_limit(self, seconds: float | None) -> str | None:
        """The statement that bounds the rest of the current transaction's statements to
        ``seconds`` (``None``: lifts the bound), where a transaction is bounded."""
        return None

    def is_statement_timeout(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the database stopping a statement at its time bound."""
        return False


def is_bounded(sql: str) -> bool:
    return sql.lstrip()[:7].lower().startswith(BOUNDED)
