"""Facts about the database that differ by vendor: its clock, its connection errors, when a
task's transaction begins, and the cursor of Firefly's hot statements."""

from __future__ import annotations

import contextlib
import datetime
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

from django.db import Error, InterfaceError, OperationalError, connection, transaction
from django.db.models.functions import Now

T = TypeVar("T")

# PostgreSQL SQLSTATEs of a connection that is gone: class 08 (connection exception), and
# admin_shutdown, crash_shutdown, cannot_connect_now (a backend terminated or restarting).
_PG_CONNECTION_STATES = ("57P01", "57P02", "57P03")
# MySQL/MariaDB client and server codes of a lost connection: can't connect (2002, 2003),
# gone away (2006), lost during query (2013), server shutdown (1053), connection killed
# (1927, MariaDB), disconnected by the server (4031).
_MYSQL_CONNECTION_CODES = frozenset({1053, 1927, 2002, 2003, 2006, 2013, 4031})


class DatabaseNow(Now):
    """The database's current time in UTC, whatever the session's time zone."""

    def as_mysql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return "UTC_TIMESTAMP(6)", []


def database_time_ago(seconds: float) -> Any:
    """An expression for "``seconds`` ago" on the database's clock."""
    return DatabaseNow() - datetime.timedelta(seconds=seconds)


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection broke (an outage), not that a query failed."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    sqlstate: Any = getattr(cause, "sqlstate", False)
    if sqlstate is not False:  # psycopg: no SQLSTATE means the client lost the server.
        return sqlstate is None or sqlstate.startswith("08") or sqlstate in _PG_CONNECTION_STATES
    code = cause.args[0] if cause is not None and cause.args else None
    if isinstance(code, int):
        return code in _MYSQL_CONNECTION_CODES
    return connection.connection is None or not connection.is_usable()


def can_listen(conn: Any) -> bool:
    """Whether ``conn`` can LISTEN for wake-ups: PostgreSQL through psycopg 3 (the listener
    uses its ``notifies()``; psycopg2 has no such method)."""
    if conn.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)


# PostgreSQL's lock_not_available; MySQL/MariaDB's lock wait timeout.
_PG_LOCK_TIMEOUT_STATE = "55P03"
_MYSQL_LOCK_TIMEOUT_CODE = 1205


def limit_lock_wait(seconds: float) -> None:
    """Make the rest of this transaction wait at most ``seconds`` for a row lock.

    A rescue must not hang behind the open transaction of a consumer that is frozen (paused,
    or cut off with its transaction still open on the server): it gives up and tries again
    at its next turn. On MySQL/MariaDB the setting holds for the session, so call it only on
    a connection that does nothing else. SQLite has one lock and its own ``timeout``.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{seconds * 1000:.0f}"])
    elif connection.vendor == "mysql":
        with connection.cursor() as cursor:
            # Whole seconds, at least one: the server's smallest wait.
            cursor.execute("SET SESSION innodb_lock_wait_timeout = %s", [max(1, round(seconds))])


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is a wait for a row lock that :func:`limit_lock_wait` cut short."""
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) == _PG_LOCK_TIMEOUT_STATE:
        return True
    code = cause.args[0] if cause is not None and cause.args else None
    return code == _MYSQL_LOCK_TIMEOUT_CODE


def check_connection() -> None:
    """Between tasks: close this thread's connection if a task left it broken, or if it has
    outlived ``CONN_MAX_AGE``, as Django does between requests; the next query reconnects.

    ``CONN_MAX_AGE = 0``, Django's default, means "close after each request"; a consumer
    reads it as "keep the connection while it works", since reconnecting for every task
    would cost more than most tasks.
    """
    if connection.connection is None or connection.in_atomic_block:
        return
    # Closing a connection the server already dropped can raise (MySQLdb); it is closed anyway.
    with contextlib.suppress(Error):
        if connection.settings_dict.get("CONN_MAX_AGE") != 0:
            connection.close_if_unusable_or_obsolete()
        elif connection.errors_occurred:
            if connection.is_usable():
                connection.errors_occurred = False
            else:
                connection.close()


@contextlib.contextmanager
def atomic_from_first_query() -> Iterator[None]:
    """``transaction.atomic()`` whose transaction, on SQLite, begins at its first query.

    Django begins an SQLite transaction when the block opens, and with
    ``transaction_mode="IMMEDIATE"`` (which W002 asks for) that takes the database's only
    write lock: a task that waits on the network before it queries, or never queries, would
    keep every other consumer thread and web request from writing for as long as it waits.
    Begun at the first query (still ``BEGIN IMMEDIATE``), the task holds the lock only from
    then to its completion's commit. PostgreSQL and MariaDB take no lock, nor on PostgreSQL
    a snapshot, before a transaction's first query anyway: they get a plain atomic block.
    """
    conn = transaction.get_connection()
    # Django's SQLite backend begins its transactions in this method (Django 5.2 and 6.x).
    begin = getattr(conn, "_start_transaction_under_autocommit", None)
    if conn.vendor != "sqlite" or conn.in_atomic_block or begin is None:
        with transaction.atomic():
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
                begin()  # BEGIN [IMMEDIATE] as Django would have, through the other wrappers
            except BaseException:
                pending = True  # locked out: the next query (or the completion) begins it
                raise
        return execute(sql, params, many, context)

    # Outermost, so that the transaction has begun before any other wrapper runs a query.
    conn.execute_wrappers.insert(0, begin_first)
    conn._start_transaction_under_autocommit = defer
    try:
        with transaction.atomic():
            yield
    finally:
        del conn._start_transaction_under_autocommit  # back to the class's method
        conn.execute_wrappers.remove(begin_first)


# What per_database() built, by database alias, vendor and key.
_built: dict[tuple[str, str, Any], Any] = {}


def per_database(conn: Any, key: Any, build: Callable[[], T]) -> T:
    """``build()``'s result for this database and ``key``, built once: statement texts of the
    hot paths, whose building would otherwise cost more than running them."""
    cache_key = (conn.alias, conn.vendor, key)
    if cache_key not in _built:
        _built[cache_key] = build()
    return cast(T, _built[cache_key])


@functools.cache
def _hot_cursor_class() -> type | None:
    """Django's psycopg 3 cursor with server-side binding, reading results in binary when
    told; ``None`` with psycopg2."""
    from django.db.backends.postgresql import base

    binding: Any = getattr(base, "ServerBindingCursor", None)
    if binding is None:
        return None

    class HotCursor(binding):
        binary = False

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            kwargs.setdefault("binary", self.binary)
            return super().execute(query, params, **kwargs)

    return HotCursor


def binary_placeholder(conn: Any) -> str:
    """The placeholder of a parameter :func:`hot_cursor` should send in binary (an array of
    text, whose text form psycopg quotes element by element in Python), or ``%s``."""
    if conn.vendor == "postgresql" and _hot_cursor_class() is not None:
        return "%b"
    return "%s"


def hot_cursor(conn: Any) -> Any:
    """A cursor for Firefly's hot statements: claims and completions (once per batch of
    tasks), and the inserts of ``schedule()`` and ``schedule_many()``.

    On PostgreSQL with psycopg 3, the server binds its parameters (arrays travel as values,
    not quoted into the statement's text in Python), and with ``USE_TZ`` results come back
    in binary (timestamps are not parsed from text in Python): together they halve the
    Python time of a claim. Statements are prepared only as the connection's
    ``prepare_threshold`` says (Django's default: never, for the sake of connection poolers).
    Elsewhere, Django's usual cursor. It is a Django cursor either way: errors are Django's,
    and execute wrappers see its queries.
    """
    cls = _hot_cursor_class() if conn.vendor == "postgresql" else None
    if cls is None:
        return conn.cursor()
    conn.ensure_connection()
    conn.validate_thread_sharing()
    cursor = cls(conn.connection)
    # Binary timestamps come back aware, in the session's time zone: right only with USE_TZ,
    # where Django's own loader returns the same instants.
    cursor.binary = conn.timezone is not None
    # As connection.cursor() wraps its cursors: logged (DEBUG, assertNumQueries) or not.
    return conn.make_debug_cursor(cursor) if conn.queries_logged else conn.make_cursor(cursor)
