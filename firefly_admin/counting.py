"""Counting rows of big tables: capped counts for every page, exact counts bounded in time.

A page never counts more than ``COUNT_LIMIT`` rows (a ``LIMIT``-ed subquery reads at most that
many index entries), and says "10,000+" when it stopped there. Counting exactly is done only
when an operator asks for it, and the database stops it after ``FIREFLY_ADMIN_COUNT_TIMEOUT``
seconds. This module is the dashboard's only home of vendor SQL: how each database is told to
give up on a statement.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import OperationalError, connections, transaction
from django.db.models import QuerySet

from firefly_admin.conf import settings

COUNT_LIMIT = 10_000

# How an operator asks a page to count exactly: ?count=exact on the task list, a posted
# count=exact on an action's confirmation page.
COUNT_VAR = "count"
EXACT = "exact"

# SQLite calls the progress handler every this many virtual machine instructions: often
# enough to stop within milliseconds of the deadline, rarely enough to cost nothing.
SQLITE_PROGRESS_STEPS = 1_000


@dataclasses.dataclass(frozen=True)
class Count:
    """How many rows matched: ``value``, and whether there are more (``capped``).

    ``stopped_after`` is set when an exact count was stopped after that many seconds; the
    count is then the capped one. ``str()`` is what pages show: ``1,234`` or ``10,000+``.
    """

    value: int
    capped: bool = False
    stopped_after: float | None = None

    def __str__(self) -> str:
        return f"{self.number}+" if self.capped else self.number

    @property
    def number(self) -> str:
        """The value with thousands separators, without the ``+``."""
        return f"{self.value:,}"

    @property
    def plural(self) -> str:
        """``"s"`` unless this is exactly one: ``0 tasks``, ``1 task``, ``1+ tasks``."""
        return "" if self.value == 1 and not self.capped else "s"

    @property
    def seconds(self) -> str:
        """``stopped_after`` as pages say it: ``3``, ``0.5``."""
        return f"{self.stopped_after or 0:g}"


def capped_count(queryset: QuerySet[Any], limit: int | None = None) -> Count:
    """How many rows ``queryset`` holds, counting no further than ``limit`` (``COUNT_LIMIT``).

    The database counts a ``LIMIT``-ed subquery, so it reads at most ``limit + 1`` rows.
    """
    limit = COUNT_LIMIT if limit is None else limit
    count = queryset.order_by().values("pk")[: limit + 1].count()
    return Count(min(count, limit), capped=count > limit)


def exact_count(queryset: QuerySet[Any], capped: Count | None = None) -> Count:
    """Every row of ``queryset``, counted until ``FIREFLY_ADMIN_COUNT_TIMEOUT`` runs out.

    When the database stops the count, the result is the capped count (``capped``, or
    counted now) with ``stopped_after`` set.
    """
    timeout = settings.COUNT_TIMEOUT
    connection = connections[queryset.db]
    try:
        with _deadline(connection, timeout):
            return Count(queryset.order_by().count())
    except OperationalError as error:
        if not _was_stopped(connection, error):
            raise
        known = capped_count(queryset) if capped is None else capped
        return dataclasses.replace(known, stopped_after=timeout)


# Vendor SQL: how each database stops a statement after a deadline ------------------------


@contextmanager
def _deadline(connection: Any, seconds: float) -> Iterator[None]:
    deadlines: dict[str, Callable[[Any, float], Any]] = {
        "postgresql": _postgresql_deadline,
        "mysql": _mysql_deadline,
        "sqlite": _sqlite_deadline,
    }
    if connection.vendor not in deadlines:
        raise NotImplementedError(f"Firefly does not support the {connection.vendor} database.")
    with deadlines[connection.vendor](connection, seconds):
        yield


@contextmanager
def _postgresql_deadline(connection: Any, seconds: float) -> Iterator[None]:
    # SET LOCAL (set_config(..., true)) lasts until the enclosing transaction or savepoint
    # ends: one of its own, rolled back afterwards, so the session's timeout comes back by
    # itself, and a cancelled statement leaves a surrounding transaction usable.
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cursor:
            milliseconds = max(1, round(seconds * 1000))  # 0 would mean "no limit"
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(milliseconds)])
        yield
        transaction.set_rollback(True, using=connection.alias)


@contextmanager
def _mysql_deadline(connection: Any, seconds: float) -> Iterator[None]:
    # A session variable outlives transactions: put the previous value back afterwards. No
    # transaction of its own: a stopped statement leaves a surrounding one usable.
    if connection.mysql_is_mariadb:
        variable, value = "max_statement_time", max(seconds, 0.000_001)  # seconds; 0: no limit
    else:
        variable, value = "max_execution_time", max(1, round(seconds * 1000))  # ms, MySQL
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT @@SESSION.{variable}")
        (previous,) = cursor.fetchone()
        cursor.execute(f"SET SESSION {variable} = %s", [value])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"SET SESSION {variable} = %s", [previous])


@contextmanager
def _sqlite_deadline(connection: Any, seconds: float) -> Iterator[None]:
    # SQLite has no statement timeout: a progress handler that returns true interrupts the
    # running statement ("interrupted"). No transaction of its own: with the IMMEDIATE
    # transaction mode, one would hold the database's write lock while counting.
    connection.ensure_connection()
    ends = time.monotonic() + seconds
    connection.connection.set_progress_handler(
        lambda: time.monotonic() > ends, SQLITE_PROGRESS_STEPS
    )
    try:
        yield
    finally:
        connection.connection.set_progress_handler(None, 0)


def _was_stopped(connection: Any, error: OperationalError) -> bool:
    """Whether ``error`` is the database stopping a statement at its deadline."""
    cause = error.__cause__
    if connection.vendor == "postgresql":
        # query_canceled; psycopg 3 names it sqlstate, psycopg2 pgcode
        return "57014" in (getattr(cause, "sqlstate", None), getattr(cause, "pgcode", None))
    if connection.vendor == "mysql":
        # ER_STATEMENT_TIMEOUT (MariaDB), ER_QUERY_TIMEOUT (MySQL)
        return bool(error.args) and error.args[0] in (1969, 3024)
    return "interrupted" in str(error)
