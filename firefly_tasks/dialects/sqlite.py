"""SQLite: one write lock for the whole database, so each claim and completion is one
statement; transactions begin at their first query, not when a block opens."""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
from collections.abc import Iterator
from typing import Any

from django.core.checks import CheckMessage, Warning
from django.db import models, transaction
from django.db.backends.sqlite3.base import SQLiteCursorWrapper

from firefly_tasks.dialects import datetimes
from firefly_tasks.dialects.base import ORDER, Claim, Dialect

# Hot statements' text with Django's "%s" placeholders turned into SQLite's "?": Django does
# it with a regular expression at every execute, which costs more than a small statement.
# Kept for short texts only (at most 256 of 4,096 characters: 2 MiB): a long one, such as
# a big group's completion, costs far more to run than to convert.
_QMARK: dict[str, str] = {}
_QMARK_MOST = 256
_QMARK_LONGEST = 4096


class _HotCursor(SQLiteCursorWrapper):
    """Django's SQLite cursor, but for converting each statement's text once."""

    def convert_query(self, query: str, *, param_names: Any = None) -> str:
        if param_names is not None or len(query) > _QMARK_LONGEST:
            return str(super().convert_query(query, param_names=param_names))
        found = _QMARK.get(query)
        if found is None:
            if len(_QMARK) >= _QMARK_MOST:
                _QMARK.clear()
            found = _QMARK[query] = str(super().convert_query(query))
        return found


class SQLiteDialect(Dialect):
    vendor = "sqlite"
    claims_ahead = False  # one writer at a time: the claim would wait for the group's commit

    def adapt(self, value: datetime.datetime | None) -> Any:
        return datetimes.as_text(self.connection, value)

    def hot_cursor(self) -> Any:
        """As ``connection.cursor()`` builds one (logged or not, Django's errors), of
        :class:`_HotCursor`."""
        conn = self.connection
        conn.close_if_health_check_failed()
        conn.ensure_connection()
        conn.validate_thread_sharing()
        with conn.wrap_database_errors:
            cursor = conn.connection.cursor(factory=_HotCursor)
            return (
                conn.make_debug_cursor(cursor) if conn.queries_logged else conn.make_cursor(cursor)
            )

    def claim_statement(
        self, model: type[models.Model], queue_model: type[models.Model], claim: Claim
    ) -> tuple[str, list[Any]]:
        """The claim for some queue names, one statement (the write lock makes its
        select-and-update atomic). As on PostgreSQL, each queue is read by its own LIMITed
        scan of the ready index, in run order, and only the rows they return are sorted.
        ``+not_before`` keeps ``not_before`` out of the index search: with a big table's
        statistics, SQLite would otherwise skip-scan the index by it and sort every ready
        row."""
        count = len(claim.queues)
        sql = self.built(("claim", count), lambda: self._claim_sql(model, queue_model, count))
        stamp = self.adapt(claim.now)
        params = [claim.running, stamp, claim.worker_id, claim.ready]
        for queue in claim.queues:
            params += [claim.ready, queue, stamp, claim.engine, queue, claim.limit]
        return sql, [*params, claim.limit]

    def _claim_sql(
        self, model: type[models.Model], queue_model: type[models.Model], count: int
    ) -> str:
        task, queues = self.qn(model._meta.db_table), self.qn(queue_model._meta.db_table)
        per_queue = (
            f"SELECT * FROM (SELECT id, priority, not_before FROM {task}"
            f" WHERE status = %s AND queue = %s AND +not_before <= %s AND min_engine <= %s"
            f" AND NOT EXISTS (SELECT 1 FROM {queues} q WHERE q.name = %s AND q.paused)"
            f" ORDER BY {ORDER} LIMIT %s)"
        )
        return (
            f"UPDATE {task} SET status = %s, attempt = attempt + 1, started = %s,"
            f" worker_id = %s WHERE status = %s AND id IN ("
            f" SELECT id FROM ({' UNION ALL '.join([per_queue] * count)})"
            f" ORDER BY {ORDER} LIMIT %s"
            f") RETURNING {self.columns(model)}"
        )

    def max_params(self) -> int | None:
        """The library's own limit (32,766 since SQLite 3.32), not Django's 999 of old."""
        self.connection.ensure_connection()
        raw = self.connection.connection
        return int(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))

    @contextlib.contextmanager
    def atomic_from_first_query(self) -> Iterator[None]:
        """Django begins an SQLite transaction when the block opens, and with
        ``transaction_mode="IMMEDIATE"`` (which W002 asks for) that takes the database's only
        write lock: a task that waits on the network before it queries, or never queries,
        would keep every other consumer thread and web request from writing for as long as it
        waits. Begun at the first query (still ``BEGIN IMMEDIATE``), the task holds the lock
        only from then to its completion's commit."""
        conn = self.connection
        # Django's SQLite backend begins its transactions in this method (5.2 and 6.x).
        begin = getattr(conn, "_start_transaction_under_autocommit", None)
        if conn.in_atomic_block or begin is None:
            with transaction.atomic(using=conn.alias):
                yield
            return
        pending = False

        def defer() -> None:  # what atomic() calls instead of beginning
            nonlocal pending
            pending = True

        def begin_first(execute: Any, sql: Any, params: Any, many: Any, context: Any) -> Any:
            nonlocal pending
            if pending:
                pending = False  # BEGIN's own execution passes through here too
                try:
                    begin()  # BEGIN [IMMEDIATE] as Django would have, through the wrappers
                except BaseException:
                    pending = True  # locked out: the next query (or the completion) begins
                    raise
            return execute(sql, params, many, context)

        # Outermost, so that the transaction has begun before any other wrapper runs a query.
        conn.execute_wrappers.insert(0, begin_first)
        conn._start_transaction_under_autocommit = defer
        try:
            with transaction.atomic(using=conn.alias):
                yield
        finally:
            del conn._start_transaction_under_autocommit  # back to the class's method
            conn.execute_wrappers.remove(begin_first)

    def check(self) -> list[CheckMessage]:
        conn = self.connection
        if conn.is_in_memory_db():
            return []
        with conn.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            mode = cursor.fetchone()[0]
        if str(mode).lower() == "wal":
            return []
        return [
            Warning(
                f"SQLite database {conn.alias!r} is in {mode} journal mode, not WAL: "
                "consumers and web requests will block each other.",
                hint='Add "init_command": "PRAGMA journal_mode=WAL;" to its OPTIONS.',
                id="firefly_tasks.W001",
            )
        ]
