"""MariaDB (and MySQL): no ``UPDATE ... RETURNING``, so a claim locks with ``SKIP LOCKED``,
updates and reads back in one short transaction; the session's clock is not UTC."""

from __future__ import annotations

import datetime
from typing import Any

from django.db import OperationalError, models, transaction

from firefly_tasks.dialects import datetimes
from firefly_tasks.dialects.base import ORDER, Claim, Dialect
from firefly_tasks.dialects.rollup_rows import RollupRows
from firefly_tasks.dialects.statement_limits import is_bounded

# Client and server codes of a lost connection: can't connect (2002, 2003), gone away
# (2006), lost during query (2013), server shutdown (1053), connection killed (1927, MariaDB),
# disconnected by the server (4031).
_CONNECTION_CODES = frozenset({1053, 1927, 2002, 2003, 2006, 2013, 4031})
_LOCK_WAIT_TIMEOUT = 1205
_STATEMENT_TIMEOUT = 1969  # MariaDB's max_statement_time exceeded
UNKNOWN_THREAD = 1094  # KILL of a session that is gone
_DEADLOCK = 1213


def _code(exc: BaseException) -> Any:
    cause = exc.__cause__
    return cause.args[0] if cause is not None and cause.args else None


class MySQLDialect(Dialect):
    vendor = "mysql"
    utc_now_sql = "UTC_TIMESTAMP(6)"

    def adapt(self, value: datetime.datetime | None) -> Any:
        return datetimes.as_text(self.connection, value)

    def anything_ready(self, model: type[models.Model], claim: Claim) -> bool:
        """One autocommit query before a claim's transaction: an idle consumer polls several
        times a second, and the locking transaction takes five round trips to find nothing."""
        placeholders = ", ".join(["%s"] * len(claim.queues))
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {self.qn(model._meta.db_table)} WHERE status = %s"
                f" AND queue IN ({placeholders}) AND not_before <= %s AND min_engine <= %s"
                " LIMIT 1",
                [claim.ready, *claim.queues, self.adapt(claim.now), claim.engine],
            )
            return cursor.fetchone() is not None

    def claim(
        self, model: type[models.Model], queue_model: type[models.Model], claim: Claim
    ) -> list[Any]:
        """One queue at a time, so the composite ready index serves the ORDER BY (after
        :meth:`anything_ready`)."""
        task = self.qn(model._meta.db_table)
        stamp = self.adapt(claim.now)
        queues = claim.queues
        alias = self.connection.alias
        with transaction.atomic(using=alias, savepoint=False), self.connection.cursor() as cursor:
            paused = set(
                queue_model._default_manager.using(alias)
                .filter(name__in=queues, paused=True)
                .values_list("name", flat=True)
            )
            # Up to `limit` candidates from each queue, then the best `limit` of them all, so
            # priority wins across queues; the rest stay locked only until this commit.
            candidates: list[tuple[int, Any, int]] = []
            for queue in queues:
                if queue in paused:
                    continue
                cursor.execute(
                    self.candidates_sql(model),
                    [claim.ready, queue, stamp, claim.engine, claim.limit],
                )
                candidates += cursor.fetchall()
            candidates.sort(key=lambda row: (-row[0], row[1], row[2]))
            claimed = [row[2] for row in candidates[: claim.limit]]
            if not claimed:
                return []
            placeholders = ", ".join(["%s"] * len(claimed))
            cursor.execute(
                f"UPDATE {task} SET status = %s, attempt = attempt + 1, started = %s,"
                f" worker_id = %s WHERE id IN ({placeholders})",
                [claim.running, stamp, claim.worker_id, *claimed],
            )
            return self.fetch_rows(
                model,
                f"SELECT {self.columns(model)} FROM {task} WHERE id IN ({placeholders})",
                claimed,
            )

    def candidates_sql(self, model: type[models.Model]) -> str:
        """The candidate query for one queue: the ready index (``status``, ``queue``,
        ``priority DESC``, ``not_before``, ``id``) serves both its filter and its order, so it
        reads at most ``limit`` index entries and needs no filesort (tested with EXPLAIN)."""
        return (
            f"SELECT priority, not_before, id FROM {self.qn(model._meta.db_table)}"
            f" WHERE status = %s AND queue = %s AND not_before <= %s AND min_engine <= %s"
            f" ORDER BY {ORDER} LIMIT %s FOR UPDATE SKIP LOCKED"
        )

    def upsert_adding(self, rollup: RollupRows) -> str:
        sets = ", ".join(
            f"{self.qn(c)} = {self.qn(c)} + VALUES({self.qn(c)})" for c in rollup.added
        )
        return f"ON DUPLICATE KEY UPDATE {sets}"

    def bounded_statement(self, sql: str, seconds: float) -> str:
        # SET STATEMENT is MariaDB's; MySQL has no bound for every kind of statement.
        if not is_bounded(sql) or not self.connection.mysql_is_mariadb:
            return sql
        return f"SET STATEMENT max_statement_time={max(seconds, 0.001):.3f} FOR {sql}"

    def is_statement_timeout(self, exc: BaseException) -> bool:
        return bool(_code(exc) == _STATEMENT_TIMEOUT)

    def is_deadlock(self, exc: BaseException) -> bool:
        return bool(_code(exc) == _DEADLOCK)

    def session_id(self) -> int | None:
        raw = self.connection.connection
        return None if raw is None else int(raw.thread_id())

    def server_uptime(self) -> float | None:
        with self.connection.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Uptime'")
            return float(cursor.fetchone()[1])

    def end_session(self, session: int) -> bool:
        with self.connection.cursor() as cursor:
            try:
                cursor.execute("KILL CONNECTION %s", [session])
            except OperationalError as exc:
                if _code(exc) == UNKNOWN_THREAD:
                    return False
                raise
        return True

    def is_connection_error(self, exc: BaseException) -> bool:
        if isinstance(exc, OperationalError) and isinstance(_code(exc), int):
            return _code(exc) in _CONNECTION_CODES
        return super().is_connection_error(exc)

    def limit_lock_wait(self, seconds: float) -> None:
        """For the session: call it only on a connection that does nothing else."""
        with self.connection.cursor() as cursor:
            # Whole seconds, at least one: the server's smallest wait.
            cursor.execute("SET SESSION innodb_lock_wait_timeout = %s", [max(1, round(seconds))])

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return bool(_code(exc) == _LOCK_WAIT_TIMEOUT)
