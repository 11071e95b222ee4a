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
from collections.abc import Callable
from typing import Any

from django.db import OperationalError, connections, transaction
from django.db.models import QuerySet
from django.utils.formats import number_format

from firefly_admin.conf import settings
from firefly_admin.display import seconds_text

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
    count is then the capped one. ``str()`` is what pages show, in the active language:
    ``1,234`` or ``10,000+`` in English, ``1 234`` or ``10 000+`` in French.
    """

    value: int
    capped: bool = False
    stopped_after: float | None = None

    def __str__(self) -> str:
        return f"{self.number}+" if self.capped else self.number

    @property
    def number(self) -> str:
        """The value with the active language's thousands separator, without the ``+``."""
        return number_format(self.value, force_grouping=True)

    @property
    def quantity(self) -> int:
        """The number a plural form agrees with (``ngettext``, ``blocktranslate count``): one
        more than the value past the cap, so that ``1+`` reads as a plural."""
        return self.value + 1 if self.capped else self.value

    @property
    def seconds(self) -> str:
        """``stopped_after`` as pages say it (:func:`seconds_text`)."""
        return seconds_text(self.stopped_after or 0)


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
    counters: dict[str, Callable[[Any, QuerySet[Any], float], int]] = {
        "postgresql": _postgresql_count,
        "mysql": _mysql_count,
        "sqlite": _sqlite_count,
    }
    if connection.vendor not in counters:
        raise NotImplementedError(f"Firefly does not support the {connection.vendor} database.")
    try:
        return Count(counters[connection.vendor](connection, queryset.order_by(), timeout))
    except OperationalError as error:
        if not _was_stopped(connection, error):
            raise
        known = capped_count(queryset) if capped is None else capped
        return dataclasses.replace(known, stopped_after=timeout)


# Vendor SQL: how each database stops a statement after a deadline ------------------------


def _postgresql_count(connection: Any, queryset: QuerySet[Any], seconds: float) -> int:
    # SET LOCAL (set_config(..., true)) lasts until the enclosing transaction or savepoint
    # ends: one of its own, rolled back afterwards, so the session's timeout comes back by
    # itself, and a cancelled statement leaves a surrounding transaction usable.
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cursor:
            milliseconds = max(1, round(seconds * 1000))  # 0 would mean "no limit"
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(milliseconds)])
        count = queryset.count()
        transaction.set_rollback(True, using=connection.alias)
    return count


def _mysql_count(connection: Any, queryset: QuerySet[Any], seconds: float) -> int:
    # One statement that carries its own deadline: nothing to set before, or put back after.
    rows, params = queryset.values("pk").query.get_compiler(connection=connection).as_sql()
    if connection.mysql_is_mariadb:
        sql = f"SET STATEMENT max_statement_time = %s FOR SELECT COUNT(*) FROM ({rows}) rows_"
        params = (max(seconds, 0.000_001), *params)  # in seconds; 0 means no limit
    else:
        milliseconds = max(1, round(seconds * 1000))
        sql = f"SELECT /*+ MAX_EXECUTION_TIME({milliseconds}) */ COUNT(*) FROM ({rows}) rows_"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (count,) = cursor.fetchone()
    return int(count)


def _sqlite_count(connection: Any, queryset: QuerySet[Any], seconds: float) -> int:
    # SQLite has no statement timeout: a progress handler that returns true interrupts the
    # running statement ("interrupted"). Nothing else runs on this connection meanwhile.
    connection.ensure_connection()
    ends = time.monotonic() + seconds
    connection.connection.set_progress_handler(
        lambda: time.monotonic() > ends, SQLITE_PROGRESS_STEPS
    )
    try:
        return queryset.count()
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
