"""What Firefly asks of a database: the interface each dialect module implements.

Everything here is either the same on every database or a default a dialect overrides. The
statements themselves never name a task state: the caller (the task queryset, the only writer
of task state) passes the states each statement guards on and sets."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.core.checks import CheckMessage
from django.db import Error, models

from firefly_tasks.dialects import datetimes
from firefly_tasks.dialects.bookkeeping import TransactionBookkeeping
from firefly_tasks.dialects.instances import instances, saved
from firefly_tasks.dialects.rollup_rows import RollupRows
from firefly_tasks.dialects.sessions import Sessions
from firefly_tasks.dialects.statement_limits import StatementLimits
from firefly_tasks.dialects.ticking import TickStatements
from firefly_tasks.dialects.workflows import Workflows

T = TypeVar("T")

# Run order of ready tasks: priority (higher first), then not_before, then id.
ORDER = "priority DESC, not_before, id"
# The most text one multi-row INSERT carries, as counted by row_bytes() (MariaDB refuses a
# statement longer than its max_allowed_packet, 16 MiB by default).
INSERT_BYTES = 4 * 1024 * 1024
ROW_BYTES = 1024  # a row's longest name, queue and backend, dates, flags, share of the text
BUILT_MOST = 256  # the most statement texts a dialect keeps (rollup ones vary with columns)


def row_bytes(row: Any) -> int:
    """At most how much of an ``INSERT``'s text a task row takes (its call, twice: quoting
    can double it on MariaDB, which sends the statement as text)."""
    return 2 * (len(row.params_data) + len(row.params_preview)) + ROW_BYTES


@dataclass
class Completions:
    """A group of completed attempts, as columns, and the states their statement uses."""

    ids: list[int]
    attempts: list[int]
    returned: list[str]
    previews: list[str]
    started: list[datetime.datetime | None]
    finished: list[datetime.datetime]
    worker_id: int | None
    worker_name: str
    running: str  # the fence: each row must still be in this state, at this attempt
    completed: str  # the state it moves to
    outcome: str  # the outcome of each attempt row
    rollup: RollupRows | None = None  # added to the rollups if every row was completed

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Claim:
    """What one claim asks for, and the states it moves rows between."""

    queues: list[str]
    limit: int
    worker_id: int | None
    now: datetime.datetime
    ready: str
    running: str
    engine: int  # the claiming consumer's engine version: rows above it are left alone


class Dialect(TransactionBookkeeping, TickStatements, Workflows, Sessions, StatementLimits):
    """One database connection's dialect (see ``dialect()``), caching what it builds."""

    vendor = ""
    claims_ahead = True  # a second connection can claim while the first is in a transaction
    # The database's UTC clock in SQL, where Django's Now() is not UTC (see clock.py).
    utc_now_sql: str | None = None

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._built: dict[Any, Any] = {}

    def built(self, key: Any, build: Callable[[], T]) -> T:
        """``build()``'s result for ``key``, built once (up to :data:`BUILT_MOST` of them)."""
        found = self._built.get(key)
        if found is None:
            if len(self._built) >= BUILT_MOST:
                self._built.clear()
            found = self._built[key] = build()
        return cast(T, found)

    def qn(self, name: str | None) -> str:
        """``name`` quoted for this database (a table or a column)."""
        return str(self.connection.ops.quote_name(name))

    def adapt(self, value: datetime.datetime | None) -> Any:
        return self.connection.ops.adapt_datetimefield_value(value)

    # Tasks: insert, claim, complete ---------------------------------------------------------

    def insert_tasks(self, model: type[models.Model], rows: list[Any]) -> list[Any]:
        """Insert unsaved task rows and set their ids; see ``TaskQuerySet.insert_calls``.

        Many rows are multi-row ``INSERT ... RETURNING`` statements, each within the
        database's parameter limit and ``INSERT_BYTES`` of text: compiling them through
        ``bulk_create()`` costs several times the statement itself.
        """
        if len(rows) == 1:
            return [self._insert_one(model, rows[0])]
        if not self.connection.features.can_return_rows_from_bulk_insert:
            return list(model._default_manager.using(self.connection.alias).bulk_create(rows))
        head, row_sql, attnames, datetimes = self.built(
            ("insert", model), lambda: self._insert_parts(model)
        )
        most = max(1, (self.max_params() or len(rows) * len(attnames)) // len(attnames))
        chunk: list[Any] = []
        size = 0
        for row in rows:
            size += row_bytes(row)
            if chunk and (len(chunk) == most or size > INSERT_BYTES):
                self._insert_many(head, row_sql, attnames, datetimes, chunk)
                chunk, size = [], row_bytes(row)
            chunk.append(row)
        self._insert_many(head, row_sql, attnames, datetimes, chunk)
        return rows

    def _insert_many(
        self, head: str, row_sql: str, attnames: list[str], datetimes: list[int], rows: list[Any]
    ) -> None:
        params: list[Any] = []
        adapted: dict[Any, Any] = {}  # the rows of one call share their times: adapted once
        for row in rows:
            params += self._row_params(row, attnames, datetimes, adapted)
        sql = f"{head} VALUES {', '.join([row_sql] * len(rows))} RETURNING {self.qn('id')}"
        with self.hot_cursor() as cursor:
            cursor.execute(sql, params)
            # Ids grow in the order the rows were inserted, whatever order RETURNING uses.
            ids = sorted(pk for (pk,) in cursor.fetchall())
        saved(rows, ids, self.connection.alias)

    def max_params(self) -> int | None:
        """The most parameters one statement may carry, if the database has a limit."""
        limit = self.connection.features.max_query_params
        return int(limit) if limit else None

    def _insert_one(self, model: type[models.Model], row: Any) -> Any:
        head, row_sql, attnames, datetimes = self.built(
            ("insert", model), lambda: self._insert_parts(model)
        )
        returning = bool(self.connection.features.can_return_columns_from_insert)
        sql = self.built(
            ("insert one", model),
            lambda: (
                f"{head} VALUES {row_sql}" + (f" RETURNING {self.qn('id')}" if returning else "")
            ),
        )
        with self.hot_cursor() as cursor:
            cursor.execute(sql, self._row_params(row, attnames, datetimes, {}))
            pk = cursor.fetchone()[0] if returning else cursor.lastrowid
        saved([row], [pk], self.connection.alias)
        return row

    def _row_params(
        self, row: Any, attnames: list[str], datetimes: list[int], adapted: dict[Any, Any]
    ) -> list[Any]:
        """A row's values in ``attnames`` order, its datetimes adapted (each once: ``adapted``)."""
        values = row.__dict__
        params = [values[name] for name in attnames]
        for i in datetimes:
            value = params[i]
            if value is not None:
                params[i] = adapted.get(value) or adapted.setdefault(value, self.adapt(value))
        return params

    def _insert_parts(self, model: type[models.Model]) -> tuple[str, str, list[str], list[int]]:
        """An ``INSERT`` of ``model``'s rows, in parts: ``INSERT INTO table (columns)``, one
        row's placeholders, the attributes of a row's parameters in order, and which of them
        are datetimes to adapt (every other column holds a str, int, bool or None, which
        drivers take as they are)."""
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        head = (
            f"INSERT INTO {self.qn(model._meta.db_table)} "
            f"({', '.join(self.qn(f.column) for f in fields)})"
        )
        datetimes = [i for i, f in enumerate(fields) if isinstance(f, models.DateTimeField)]
        return head, f"({', '.join(['%s'] * len(fields))})", [f.attname for f in fields], datetimes

    def anything_ready(self, model: type[models.Model], claim: Claim) -> bool:
        return True  # where finding nothing costs a transaction, a dialect looks first

    def claim(
        self, model: type[models.Model], queue_model: type[models.Model], claim: Claim
    ) -> list[Any]:
        """Move up to ``claim.limit`` ready rows of ``claim.queues`` to ``claim.running`` for
        the worker, bump their ``attempt``, stamp ``started``; return them (any order)."""
        sql, params = self.claim_statement(model, queue_model, claim)
        return self.fetch_rows(model, sql, params)

    def claim_statement(
        self, model: type[models.Model], queue_model: type[models.Model], claim: Claim
    ) -> tuple[str, list[Any]]:
        """The claim as one ``UPDATE ... RETURNING`` statement and its parameters."""
        raise NotImplementedError(f"{self.vendor} claims in more than one statement")

    def complete(
        self, task_model: type[models.Model], attempt_model: type[models.Model], done: Completions
    ) -> int:
        """Mark ``done`` completed where each row still runs the attempt that finished, and
        insert their attempts; return how many rows were completed (fewer than ``len(done)``:
        no attempt was inserted, and the caller must roll back).

        Without arrays (SQLite, MariaDB): one fenced ``UPDATE`` whose values differ by id
        through ``CASE``, then one multi-row ``INSERT`` of the attempts.
        """
        params: list[Any] = [done.completed, self.adapt(done.finished[-1])]
        ids = done.ids

        def by_id(values: list[Any]) -> str:
            if all(value == values[0] for value in values):
                params.append(values[0])
                return "%s"
            for pk, value in zip(ids, values, strict=True):
                params.extend((pk, value))
            whens = " ".join(["WHEN %s THEN %s"] * len(ids))
            return f"CASE {self.qn('id')} {whens} END"

        returned = by_id(done.returned)
        previews = by_id(done.previews)
        params += ids
        # The fence: each row must still be running the attempt that finished.
        attempts = by_id(done.attempts)
        params.append(done.running)
        sql = (
            f"UPDATE {self.qn(task_model._meta.db_table)} SET status = %s, completed = %s, "
            f"error = '', traceback = '', returned = {returned}, returned_preview = {previews} "
            f"WHERE id IN ({', '.join(['%s'] * len(ids))}) AND attempt = {attempts} "
            f"AND status = %s"
        )
        with self.hot_cursor() as cursor:
            cursor.execute(sql, params)
            updated = int(cursor.rowcount)
        if updated == len(done):
            self._insert_attempts(attempt_model, done)
            if done.rollup:
                self.add_to_rollups(done.rollup)
        return updated

    # Rollups ---------------------------------------------------------------------------------

    def add_to_rollups(self, rollup: RollupRows) -> None:
        """Insert the rows of ``rollup``, or add them to the rows already there with the same
        key: one statement, its text built once per shape."""
        sql = self.built(
            ("rollups", *rollup.shape()),
            lambda: (
                f"INSERT INTO {rollup.into(self.qn)} VALUES {rollup.values()} "
                f"{self.upsert_adding(rollup)}"
            ),
        )
        with self.hot_cursor() as cursor:
            cursor.execute(sql, rollup.params(self.adapt))

    def upsert_adding(self, rollup: RollupRows) -> str:
        """The clause of an ``INSERT`` that adds the ``added`` columns to an existing row with
        the same ``key`` (PostgreSQL and SQLite share it)."""
        table = self.qn(rollup.model._meta.db_table)
        sets = ", ".join(
            f"{self.qn(c)} = {table}.{self.qn(c)} + excluded.{self.qn(c)}" for c in rollup.added
        )
        return f"ON CONFLICT ({', '.join(map(self.qn, rollup.key))}) DO UPDATE SET {sets}"

    def columns(self, model: type[models.Model], table: str = "") -> str:
        """Every column of ``model``, in field order (what :meth:`fetch_rows` reads)."""
        prefix = f"{table}." if table else ""
        return ", ".join(f"{prefix}{self.qn(f.column)}" for f in model._meta.concrete_fields)

    def fetch_rows(self, model: type[models.Model], sql: str, params: list[Any]) -> list[Any]:
        """Run a statement returning :meth:`columns` and build its rows, as ``raw()`` would
        but with one ``fetchall()`` and no per-row column mapping: every task's hot path."""
        compiler, converters, names = self.built(("reader", model), lambda: self._reader(model))
        with self.hot_cursor() as cursor:
            cursor.execute(sql, params)
            values: Any = cursor.fetchall()
        if not values:
            return []
        if converters:
            values = compiler.apply_converters(values, converters)
        return instances(model, self.connection.alias, names, values)

    def _reader(self, model: type[models.Model]) -> tuple[Any, Any, list[str]]:
        # The compiler and converters of the model's columns: building them costs more than
        # the claim of an empty queue, which idle consumers make several times a second.
        fields, table = model._meta.concrete_fields, model._meta.db_table
        compiler = self.connection.ops.compiler("SQLCompiler")(
            model._default_manager.none().query, self.connection, self.connection.alias
        )
        columns = [f.get_col(table) for f in fields]
        converters = datetimes.quicken(compiler.get_converters(columns), self.connection.ops)
        return compiler, converters, [f.attname for f in fields]

    def _insert_attempts(self, attempt_model: type[models.Model], done: Completions) -> None:
        """The completed attempts in one multi-row INSERT."""
        columns = ["task_id", "number", "worker_id", "worker_name", "started", "finished"]
        columns.append("outcome")
        params: list[Any] = []
        for i in range(len(done)):
            params += [
                done.ids[i],
                done.attempts[i],
                done.worker_id,
                done.worker_name,
                self.adapt(done.started[i]),
                self.adapt(done.finished[i]),
                done.outcome,
            ]
        row_sql = f"({', '.join(['%s'] * len(columns))}, '', '')"
        sql = (
            f"INSERT INTO {self.qn(attempt_model._meta.db_table)} "
            f"({', '.join(self.qn(c) for c in columns)}, {self.qn('error')}, "
            f"{self.qn('traceback')}) VALUES {', '.join([row_sql] * len(done))}"
        )
        with self.hot_cursor() as cursor:
            cursor.execute(sql, params)

    # Cursors and transactions ---------------------------------------------------------------

    def hot_cursor(self) -> Any:
        """A cursor for Firefly's hot statements (claims, completions, inserts). A Django
        cursor: errors are Django's, and execute wrappers see its queries."""
        return self.connection.cursor()

    def binary_placeholder(self) -> str:
        """The placeholder of a parameter :meth:`hot_cursor` should send in binary."""
        return "%s"

    # Errors and locks -----------------------------------------------------------------------

    def is_connection_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the connection broke (an outage), not that a query failed."""
        from django.db import InterfaceError, OperationalError

        if isinstance(exc, InterfaceError):
            return True
        if not isinstance(exc, OperationalError):
            return False
        return self.connection.connection is None or not self.connection.is_usable()

    def limit_lock_wait(self, seconds: float) -> None:
        """Make the rest of this transaction wait at most ``seconds`` for a row lock, so a
        rescue does not hang behind a frozen consumer's transaction. SQLite has one lock and
        its own ``timeout``: nothing to do."""

    def is_lock_timeout(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a wait for a row lock that :meth:`limit_lock_wait` cut short."""
        return False

    def check_connection(self) -> None:
        """Between tasks: close the connection if a task left it broken, or if it has
        outlived ``CONN_MAX_AGE``, as Django does between requests; the next query reconnects.
        ``CONN_MAX_AGE = 0``, Django's default, means "close after each request"; a consumer
        reads it as "keep the connection while it works": reconnecting for every task would
        cost more than most tasks."""
        conn = self.connection
        if conn.connection is None or conn.in_atomic_block:
            return
        # Closing a connection the server already dropped can raise (MySQLdb); it is closed.
        with contextlib.suppress(Error):
            if conn.settings_dict.get("CONN_MAX_AGE") != 0:
                conn.close_if_unusable_or_obsolete()
            elif conn.errors_occurred:
                if conn.is_usable():
                    conn.errors_occurred = False
                else:
                    conn.close()

    # Wake-ups and checks --------------------------------------------------------------------

    def can_listen(self) -> bool:
        """Whether consumers can be woken by the database when tasks become ready."""
        return False

    def listen(self, result_of: tuple[type[models.Model], int] | None = None) -> Any:
        """A new connection of its own that the database notifies when tasks become ready, or
        with ``result_of`` (model, id) when that task finishes (only where :meth:`can_listen`)."""
        raise NotImplementedError

    def notified(self, raw: Any) -> set[str]:
        """The payloads a :meth:`listen` connection was notified of since the last call."""
        raise NotImplementedError

    def check(self) -> list[CheckMessage]:
        """What this database's configuration gets wrong for Firefly (``check --database``)."""
        return []
