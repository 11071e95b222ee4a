"""Claiming ready tasks: one atomic step per database, safe with any number of consumers.

A claim moves rows from ``created`` to ``running``, bumps their ``attempt`` and records the
worker, in one short transaction of its own. Paused queues and future tasks are filtered in
SQL; the order is priority (higher first), then ``not_before``, then id.
"""

from __future__ import annotations

import datetime
import weakref
from collections.abc import Sequence
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from firefly_tasks.database import hot_cursor, per_database
from firefly_tasks.models import QueueModel, TaskModel, TaskStatus

ORDER = "priority DESC, not_before, id"


def claim_tasks(
    queues: Sequence[str],
    limit: int,
    worker_id: int | None = None,
    *,
    using: str = "default",
    now: datetime.datetime | None = None,
) -> list[TaskModel]:
    """Claim up to ``limit`` ready tasks from ``queues`` for ``worker_id``, in run order."""
    if limit < 1 or not queues:
        return []
    connection = connections[using]
    now = now or timezone.now()
    claim = _CLAIMS.get(connection.vendor)
    if claim is None:
        raise NotImplementedError(f"Firefly does not support the {connection.vendor} database.")
    rows = claim(connection, list(queues), limit, worker_id, now)
    rows.sort(key=lambda row: (-row.priority, row.not_before, row.pk))
    return rows


def _names(connection: Any) -> dict[str, str]:
    qn = connection.ops.quote_name
    return {
        "task": qn(TaskModel._meta.db_table),
        "queue_table": qn(QueueModel._meta.db_table),
    }


def _columns(connection: Any, table: str = "") -> str:
    """Every column of the task table, in the model's field order (see ``_fetch_rows``)."""
    qn = connection.ops.quote_name
    prefix = f"{table}." if table else ""
    return ", ".join(f"{prefix}{qn(f.column)}" for f in TaskModel._meta.concrete_fields)


# What a connection needs to read claimed rows, built on its first claim: the compiler and
# converters of the task columns, and their attribute names. Idle consumers claim several
# times a second, and building these costs more than the claim of an empty queue.
_readers: weakref.WeakKeyDictionary[Any, tuple[Any, Any, list[str]]] = weakref.WeakKeyDictionary()


def _reader(connection: Any) -> tuple[Any, Any, list[str]]:
    reader = _readers.get(connection)
    if reader is None:
        meta = TaskModel._meta
        fields = meta.concrete_fields
        compiler = connection.ops.compiler("SQLCompiler")(
            TaskModel.objects.none().query, connection, connection.alias
        )
        converters = compiler.get_converters([f.get_col(meta.db_table) for f in fields])
        reader = _readers[connection] = (compiler, converters, [f.attname for f in fields])
    return reader


def _fetch_rows(connection: Any, sql: str, params: list[Any]) -> list[TaskModel]:
    """Run a claim returning ``_columns()`` and build its rows, as ``raw()`` would but with
    one ``fetchall()`` and no per-row column mapping: this is every task's hot path."""
    compiler, converters, names = _reader(connection)
    with hot_cursor(connection) as cursor:
        cursor.execute(sql, params)
        values: Any = cursor.fetchall()
    if not values:
        return []
    if converters:
        values = compiler.apply_converters(values, converters)
    alias = connection.alias
    return [TaskModel.from_db(alias, names, row) for row in values]


def _set_running_sql() -> str:
    return "status = %s, attempt = attempt + 1, started = %s, worker_id = %s"


def postgresql_claim_sql(connection: Any) -> str:
    """PostgreSQL's claim, one statement. Each queue is read by its own LIMITed scan of the
    ready index (LATERAL), already in run order, so no plan sorts the backlog; the best
    ``limit`` of them all are claimed. Paused queues are dropped from the list of queue names,
    not anti-joined to the task rows (which leads the planner to a sequential scan and a sort
    of every ready row). The MATERIALIZED CTE is evaluated once, so the UPDATE cannot claim
    more than ``limit`` rows, and ``id = ANY(ARRAY(...))`` finds them by primary key however
    small the table looks to the planner. The text is the same for any list of queues."""
    n = _names(connection)
    return (
        f"WITH c AS MATERIALIZED ("
        f" SELECT r.id FROM unnest(%s::text[]) AS qn(name) CROSS JOIN LATERAL ("
        f"  SELECT id, priority, not_before FROM {n['task']}"
        f"  WHERE status = %s AND queue = qn.name AND not_before <= %s"
        f"  ORDER BY {ORDER} LIMIT %s FOR UPDATE SKIP LOCKED) r"
        f" WHERE NOT EXISTS (SELECT 1 FROM {n['queue_table']} q"
        f"  WHERE q.name = qn.name AND q.paused)"
        f" ORDER BY r.priority DESC, r.not_before, r.id LIMIT %s"
        f") UPDATE {n['task']} SET status = %s, attempt = attempt + 1,"
        f" started = %s, worker_id = %s WHERE id = ANY(ARRAY(SELECT id FROM c))"
        f" RETURNING {_columns(connection, n['task'])}"
    )


def postgresql_claim_params(
    queues: list[str], limit: int, worker_id: int | None, stamp: Any
) -> list[Any]:
    return [queues, TaskStatus.CREATED, stamp, limit, limit, TaskStatus.RUNNING, stamp, worker_id]


def _claim_postgresql(
    connection: Any, queues: list[str], limit: int, worker_id: int | None, now: datetime.datetime
) -> list[TaskModel]:
    stamp = connection.ops.adapt_datetimefield_value(now)
    params = postgresql_claim_params(queues, limit, worker_id, stamp)
    sql = per_database(connection, "claim", lambda: postgresql_claim_sql(connection))
    return _fetch_rows(connection, sql, params)


def sqlite_claim_sql(connection: Any, queues: int) -> str:
    """SQLite's claim for ``queues`` queue names, one statement (SQLite's write lock makes
    its select-and-update atomic). As on PostgreSQL, each queue is read by its own LIMITed
    scan of the ready index, in run order, and only the rows they return are sorted.
    ``+not_before`` keeps ``not_before`` out of the index search: with a big table's
    statistics, SQLite would otherwise skip-scan the index by it and sort every ready row."""
    n = _names(connection)
    per_queue = (
        f"SELECT * FROM (SELECT id, priority, not_before FROM {n['task']}"
        f" WHERE status = %s AND queue = %s AND +not_before <= %s"
        f" AND NOT EXISTS (SELECT 1 FROM {n['queue_table']} q WHERE q.name = %s AND q.paused)"
        f" ORDER BY {ORDER} LIMIT %s)"
    )
    return (
        f"UPDATE {n['task']} SET {_set_running_sql()}"
        f" WHERE status = %s AND id IN ("
        f" SELECT id FROM ({' UNION ALL '.join([per_queue] * queues)})"
        f" ORDER BY {ORDER} LIMIT %s"
        f") RETURNING {_columns(connection)}"
    )


def sqlite_claim_params(
    queues: list[str], limit: int, worker_id: int | None, stamp: Any
) -> list[Any]:
    params = [TaskStatus.RUNNING, stamp, worker_id, TaskStatus.CREATED]
    for queue in queues:
        params += [TaskStatus.CREATED, queue, stamp, queue, limit]
    return [*params, limit]


def _claim_sqlite(
    connection: Any, queues: list[str], limit: int, worker_id: int | None, now: datetime.datetime
) -> list[TaskModel]:
    stamp = connection.ops.adapt_datetimefield_value(now)
    params = sqlite_claim_params(queues, limit, worker_id, stamp)
    sql = per_database(
        connection, ("claim", len(queues)), lambda: sqlite_claim_sql(connection, len(queues))
    )
    return _fetch_rows(connection, sql, params)


def mysql_candidates_sql(connection: Any) -> str:
    """MariaDB's candidate query for one queue: the ready index (``status``, ``queue``,
    ``priority DESC``, ``not_before``, ``id``) serves both its filter and its order, so it reads
    at most ``limit`` index entries and needs no filesort (tested with EXPLAIN)."""
    return (
        f"SELECT priority, not_before, id FROM {_names(connection)['task']}"
        f" WHERE status = %s AND queue = %s AND not_before <= %s"
        f" ORDER BY {ORDER} LIMIT %s FOR UPDATE SKIP LOCKED"
    )


def _claim_mysql(
    connection: Any, queues: list[str], limit: int, worker_id: int | None, now: datetime.datetime
) -> list[TaskModel]:
    # MariaDB has no UPDATE ... RETURNING: lock with SKIP LOCKED, update, read back, all in
    # one short transaction. One queue at a time, so the composite index serves the ORDER BY.
    n = _names(connection)
    stamp = connection.ops.adapt_datetimefield_value(now)
    placeholders = ", ".join(["%s"] * len(queues))
    with connection.cursor() as cursor:
        # One autocommit query first: an idle consumer polls several times a second, and the
        # locking transaction below takes five round trips to find nothing.
        cursor.execute(
            f"SELECT 1 FROM {n['task']} WHERE status = %s AND queue IN ({placeholders})"
            f" AND not_before <= %s LIMIT 1",
            [TaskStatus.CREATED, *queues, stamp],
        )
        if cursor.fetchone() is None:
            return []
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        paused = set(
            QueueModel.objects.using(connection.alias)
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
                mysql_candidates_sql(connection), [TaskStatus.CREATED, queue, stamp, limit]
            )
            candidates += cursor.fetchall()
        candidates.sort(key=lambda row: (-row[0], row[1], row[2]))
        claimed = [row[2] for row in candidates[:limit]]
        if not claimed:
            return []
        placeholders = ", ".join(["%s"] * len(claimed))
        cursor.execute(
            f"UPDATE {n['task']} SET {_set_running_sql()} WHERE id IN ({placeholders})",
            [TaskStatus.RUNNING, stamp, worker_id, *claimed],
        )
        return list(TaskModel.objects.using(connection.alias).filter(pk__in=claimed))


_CLAIMS = {
    "postgresql": _claim_postgresql,
    "sqlite": _claim_sqlite,
    "mysql": _claim_mysql,
}
