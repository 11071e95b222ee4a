"""PostgreSQL: claims and completions in one statement each, rows as arrays, psycopg 3's
server-side binding and binary results, LISTEN for wake-ups."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from django.core.checks import CheckMessage, Warning
from django.db import OperationalError, connections, models

from firefly_tasks.conf import settings
from firefly_tasks.dialects.base import ORDER, Claim, Completions, Dialect
from firefly_tasks.dialects.instances import saved
from firefly_tasks.dialects.rollup_rows import RollupRows

# SQLSTATEs of a connection that is gone: class 08 (connection exception), and
# admin_shutdown, crash_shutdown, cannot_connect_now (a backend terminated or restarting).
_CONNECTION_STATES = ("57P01", "57P02", "57P03")
_LOCK_NOT_AVAILABLE = "55P03"
_QUERY_CANCELED = "57014"  # statement_timeout, or a cancel request
_DEADLOCK = "40P01"
CHANNEL = "firefly_tasks"
# Where the trigger of migration 0014 tells waiters (firefly_tasks.waiting) that an awaited
# task finished; the payload is its id.
RESULTS_CHANNEL = "firefly_results"
# A completion lets go of the task's unique key (firefly_tasks.key_holds) unless its
# ``unique_for`` period runs past the completion's time (the parameter after ``completed``)
# or a fenced thread may still be in an earlier attempt of it (``StuckTask``). The new row
# version then has no entry in the partial unique index, which spares it an index insert and
# the check of the key's older entries. Nothing is locked or waited for: a call taking the
# key waits for this transaction either way.
LET_GO = (
    "unique_hold = CASE WHEN unique_hold IS NULL THEN NULL WHEN unique_until > %s OR EXISTS "
    "(SELECT 1 FROM {stuck} s WHERE s.task_id = {row}.id) THEN unique_hold END"
)


class PostgreSQLDialect(Dialect):
    vendor = "postgresql"
    _hot: Any = None  # the psycopg cursor of hot statements (hot_cursor)

    # Inserts ----------------------------------------------------------------------------------

    def insert_tasks(self, model: type[models.Model], rows: list[Any]) -> list[Any]:
        """Many rows that differ only in their call are one ``INSERT ... SELECT FROM
        unnest()`` carrying the calls as two arrays, with every other column sent once."""
        key = rows[0].concurrency_key
        if (
            len(rows) == 1
            or rows[0].schedule is not None  # ticks differ in more than that
            or (key is not None and any(row.concurrency_key != key for row in rows))
        ):
            return super().insert_tasks(model, rows)
        varying = ("params_data", "params_preview")
        fields = [
            f for f in model._meta.concrete_fields if not f.primary_key and f.attname not in varying
        ]
        template = rows[0]
        connection = self.connection
        constants = [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields]
        columns = [self.qn(str(f.column)) for f in fields] + [self.qn("params")]
        columns.append(self.qn("params_preview"))
        selects = [f"CAST(%s AS {f.cast_db_type(connection)})" for f in fields]
        b = self.binary_placeholder()
        sql = (
            f"INSERT INTO {self.qn(model._meta.db_table)} ({', '.join(columns)}) "
            f"SELECT {', '.join(selects)}, u.p, u.v "
            f"FROM unnest({b}::text[], {b}::text[]) WITH ORDINALITY AS u(p, v, n) "
            f"ORDER BY u.n RETURNING {self.qn('id')}"
        )
        params = [*constants, [r.params_data for r in rows], [r.params_preview for r in rows]]
        with self.hot_cursor() as cursor:
            cursor.execute(sql, params)
            ids = [pk for (pk,) in cursor.fetchall()]
        saved(rows, ids, connection.alias)
        return rows

    # Claims -----------------------------------------------------------------------------------

    def claim_statement(
        self, model: type[models.Model], queue_model: type[models.Model], claim: Claim
    ) -> tuple[str, list[Any]]:
        """The claim, one statement. Each queue is read by its own LIMITed scan of the ready
        index (LATERAL), already in run order, so no plan sorts the backlog; the best
        ``limit`` of them all are claimed. Paused queues are dropped from the list of queue
        names, not anti-joined to the task rows (which leads the planner to a sequential scan
        and a sort of every ready row). The MATERIALIZED CTE is evaluated once, so the UPDATE
        cannot claim more than ``limit`` rows, and ``id = ANY(ARRAY(...))`` finds them by
        primary key however small the table looks to the planner. The text is the same for
        any list of queues."""
        sql = self.built("claim", lambda: self._claim_sql(model, queue_model))
        stamp = self.adapt(claim.now)
        limit = claim.limit
        params = [claim.queues, claim.ready, stamp, claim.engine, limit, limit, claim.running]
        params.append(stamp)
        return sql, [*params, claim.worker_id]

    def _claim_sql(self, model: type[models.Model], queue_model: type[models.Model]) -> str:
        task, queues = self.qn(model._meta.db_table), self.qn(queue_model._meta.db_table)
        return (
            f"WITH c AS MATERIALIZED ("
            f" SELECT r.id FROM unnest(%s::text[]) AS qn(name) CROSS JOIN LATERAL ("
            f"  SELECT id, priority, not_before FROM {task}"
            f"  WHERE status = %s AND queue = qn.name AND not_before <= %s AND min_engine <= %s"
            f"  ORDER BY {ORDER} LIMIT %s FOR UPDATE SKIP LOCKED) r"
            f" WHERE NOT EXISTS (SELECT 1 FROM {queues} q"
            f"  WHERE q.name = qn.name AND q.paused)"
            f" ORDER BY r.priority DESC, r.not_before, r.id LIMIT %s"
            f") UPDATE {task} SET status = %s, attempt = attempt + 1,"
            f" started = %s, worker_id = %s WHERE id = ANY(ARRAY(SELECT id FROM c))"
            f" RETURNING {self.columns(model, task)}"
        )

    # Completions ------------------------------------------------------------------------------

    def complete(
        self, task_model: type[models.Model], attempt_model: type[models.Model], done: Completions
    ) -> int:
        """One statement, one round trip: the fenced UPDATE, an attempt for each row it
        completed, and the group's rollup rows. A fenced row gets no attempt, the rollups get
        nothing, and the count tells the caller to roll back. One row (a slow task, run alone)
        is sent as values, which the server plans in a fraction of the time of arrays."""
        one = len(done) == 1
        rollup = done.rollup
        sql = self.built(
            ("complete", one, rollup.shape() if rollup else None),
            lambda: self._complete_sql(task_model, attempt_model, one, rollup),
        )
        if one:
            params = [
                done.completed,
                done.finished[-1],
                done.finished[-1],
                done.returned[0],
                done.previews[0],
                done.ids[0],
                done.attempts[0],
                done.running,
            ]
        else:
            params = [
                done.ids,
                done.attempts,
                done.returned,
                done.previews,
                done.started,
                done.finished,
                done.completed,
                done.finished[-1],
                done.finished[-1],
                done.running,
            ]
        if rollup:
            params += rollup.params(self.adapt)
            params.append(len(done))
        params += [done.worker_id, done.worker_name]
        if one:
            params += [done.started[0], done.finished[0]]
        params.append(done.outcome)
        with self.hot_cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)

    def _complete_sql(
        self,
        task_model: type[models.Model],
        attempt_model: type[models.Model],
        one: bool,
        rollup: RollupRows | None,
    ) -> str:
        task = self.qn(task_model._meta.db_table)
        b = self.binary_placeholder()
        stuck = self.qn(
            task_model._meta.apps.get_model("firefly_tasks", "StuckTask")._meta.db_table
        )
        let_go = LET_GO.format(stuck=stuck, row=task if one else "t")
        if one:
            done = (
                f"done AS (UPDATE {task} SET status = %s, completed = %s, {let_go}, "
                "error = '', traceback = '', returned = %s, returned_preview = %s "
                "WHERE id = %s AND attempt = %s AND status = %s RETURNING id, attempt)"
            )
        else:
            done = (
                f"u AS (SELECT * FROM unnest({b}::bigint[], {b}::integer[], {b}::text[], "
                f"{b}::text[], {b}::timestamptz[], {b}::timestamptz[]) "
                "AS u(id, attempt, returned, preview, started, finished)), "
                f"done AS (UPDATE {task} AS t "
                f"SET status = %s, completed = %s, {let_go}, error = '', traceback = '', "
                "returned = u.returned, returned_preview = u.preview FROM u "
                "WHERE t.id = u.id AND t.attempt = u.attempt AND t.status = %s RETURNING t.id)"
            )
        if rollup:
            # Added only if every row was completed (the caller rolls back otherwise).
            done += (
                f", r AS (INSERT INTO {rollup.into(self.qn)} SELECT * FROM "
                f"(VALUES {rollup.values()}) AS v "
                f"WHERE (SELECT count(*) FROM done) = %s {self.upsert_adding(rollup)})"
            )
        attempts = (
            f"INSERT INTO {self.qn(attempt_model._meta.db_table)} (task_id, number, worker_id, "
            "worker_name, started, finished, outcome, error, traceback) "
        )
        if one:
            return f"WITH {done} {attempts}SELECT id, attempt, %s, %s, %s, %s, %s, '', '' FROM done"
        return (
            f"WITH {done} {attempts}SELECT u.id, u.attempt, %s, %s, u.started, u.finished, %s, "
            "'', '' FROM u JOIN done ON done.id = u.id"
        )

    # Cursors ----------------------------------------------------------------------------------

    def hot_cursor(self) -> Any:
        """With psycopg 3, the server binds the parameters (arrays travel as values, not
        quoted into the statement's text in Python), and with ``USE_TZ`` results come back in
        binary (timestamps are not parsed from text in Python): together they halve the
        Python time of a claim. Statements are prepared only as the connection's
        ``prepare_threshold`` says (Django's default: never, for connection poolers).

        One psycopg cursor serves every hot statement of a connection (each reads its rows
        before the next runs): a new one would look up its parameters' dumpers and its
        results' loaders again, a third of a single ``schedule()``'s time in the driver."""
        cls = _hot_cursor_class()
        conn = self.connection
        if cls is None:
            return conn.cursor()
        conn.ensure_connection()
        conn.validate_thread_sharing()
        cursor = self._hot
        if cursor is None or cursor.connection is not conn.connection or cursor.closed:
            cursor = self._hot = cls(conn.connection)
        # Binary timestamps come back aware, in the session's time zone: right only with
        # USE_TZ, where Django's own loader returns the same instants.
        cursor.binary = conn.timezone is not None
        # As connection.cursor() wraps its cursors: logged (DEBUG, assertNumQueries) or not;
        # the cursor stays open when the statement's block ends.
        wrap = conn.make_debug_cursor if conn.queries_logged else conn.make_cursor
        return contextlib.nullcontext(wrap(cursor))

    def binary_placeholder(self) -> str:
        """An array of text is sent in binary: its text form psycopg would quote element by
        element in Python."""
        return "%b" if _hot_cursor_class() is not None else "%s"

    # Errors and locks -------------------------------------------------------------------------

    def is_connection_error(self, exc: BaseException) -> bool:
        if isinstance(exc, OperationalError):
            sqlstate: Any = getattr(exc.__cause__, "sqlstate", False)
            if sqlstate is not False:  # no SQLSTATE: the client lost the server
                return (
                    sqlstate is None or sqlstate.startswith("08") or sqlstate in _CONNECTION_STATES
                )
        return super().is_connection_error(exc)

    def limit_lock_wait(self, seconds: float) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{seconds * 1000:.0f}"])

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return getattr(exc.__cause__, "sqlstate", None) == _LOCK_NOT_AVAILABLE

    # Wake-ups ---------------------------------------------------------------------------------

    def transaction_limit(self, seconds: float | None) -> str | None:
        if seconds is None:
            return "SET LOCAL statement_timeout TO DEFAULT"
        return f"SET LOCAL statement_timeout = {max(int(seconds * 1000), 1)}"

    def is_statement_timeout(self, exc: BaseException) -> bool:
        return getattr(exc.__cause__, "sqlstate", None) == _QUERY_CANCELED

    def is_deadlock(self, exc: BaseException) -> bool:
        return getattr(exc.__cause__, "sqlstate", None) == _DEADLOCK

    def session_id(self) -> int | None:
        raw = self.connection.connection
        return None if raw is None else int(raw.info.backend_pid)  # psycopg 3 and psycopg2

    def server_uptime(self) -> float | None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT EXTRACT(EPOCH FROM now() - pg_postmaster_start_time())")
            return float(cursor.fetchone()[0])

    def end_session(self, session: int) -> bool:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [session])
            return bool(cursor.fetchone()[0])

    def can_listen(self) -> bool:
        """psycopg 3 only: the listener uses its ``notifies()``, which psycopg2 lacks."""
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        return bool(is_psycopg3)

    def listen(self, result_of: tuple[type[models.Model], int] | None = None) -> Any:
        """A new connection of its own, in autocommit, listening to Firefly's channel:
        triggers created by the migrations NOTIFY it when a task becomes ready. With
        ``result_of``, to the results' channel instead, the task's row marked ``awaited``
        on it (committed at once, whatever transaction the caller is in): the trigger
        NOTIFYs only for awaited rows, with the id, when they finish.

        It connects with ``FIREFLY_LISTEN_DATABASE``'s settings when that is set: a LISTEN
        through a transaction pooler (PgBouncer's ``pool_mode = transaction``) hears nothing."""
        source = self.connection
        if settings.LISTEN_DATABASE:
            source = connections[settings.LISTEN_DATABASE]
        raw = source.get_new_connection(source.get_connection_params())
        raw.autocommit = True
        if result_of is None:
            raw.execute(f"LISTEN {CHANNEL}")
            return raw
        model, pk = result_of
        raw.execute(f"LISTEN {RESULTS_CHANNEL}")
        table = self.qn(model._meta.db_table)
        raw.execute(f"UPDATE {table} SET awaited = TRUE WHERE id = %s", [pk])
        return raw

    def notified(self, raw: Any) -> set[str]:
        """The payloads of the notifications that have arrived on a :meth:`listen` connection
        (read them): ``""`` for a task that became ready."""
        return {notice.payload for notice in raw.notifies(timeout=0)}

    def notify(self, payload: str) -> None:
        """Notify the consumers' listeners, when this transaction commits (now, outside one)."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])

    def check(self) -> list[CheckMessage]:
        if not settings.LISTEN_NOTIFY or self.can_listen():
            return []
        return [
            Warning(
                f"Database {self.connection.alias!r} uses psycopg2: consumers cannot LISTEN for "
                "new tasks and poll instead (up to FIREFLY_MAX_POLL_INTERVAL later).",
                hint='Install psycopg 3 (pip install "psycopg[binary]"), or set '
                "FIREFLY_LISTEN_NOTIFY = False to say polling is intended.",
                id="firefly_tasks.W006",
            )
        ]


@functools.cache
def _hot_cursor_class() -> type | None:
    """Django's psycopg 3 cursor with server-side binding, reading results in binary when
    told; ``None`` with psycopg2."""
    from django.db.backends.postgresql import base

    binding: Any = getattr(base, "ServerBindingCursor", None)
    if binding is None:
        return None

    class HotCursor(binding):  # type: ignore[misc]  # psycopg's cursor: Any to mypy
        binary = False

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            kwargs.setdefault("binary", self.binary)
            return super().execute(query, params, **kwargs)

    return HotCursor
