"""Claiming ready tasks: one atomic step per database, safe with any number of consumers.

A claim moves rows from ``created`` to ``running``, bumps their ``attempt`` and records the
worker, in one short transaction of its own. Paused queues and future tasks are filtered in
SQL; the order is priority (higher first), then ``not_before``, then id.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

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


def _paused_filter(names: dict[str, str]) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM {names['queue_table']} q "
        f"WHERE q.name = {names['task']}.queue AND q.paused)"
    )


def _columns(connection: Any, table: str = "") -> str:
    """Every column of the task table, in the model's field order (see ``_fetch_rows``)."""
    qn = connection.ops.quote_name
    prefix = f"{table}." if table else ""
    return ", ".join(f"{prefix}{qn(f.column)}" for f in TaskModel._meta.concrete_fields)


def _fetch_rows(connection: Any, sql: str, params: list[Any]) -> list[TaskModel]:
    """Run a claim returning ``_columns()`` and build its rows, as ``raw()`` would but with
    one ``fetchall()`` and no per-row column mapping: this is every task's hot path."""
    meta = TaskModel._meta
    fields = meta.concrete_fields
    compiler = connection.ops.compiler("SQLCompiler")(
        TaskModel.objects.none().query, connection, connection.alias
    )
    converters = compiler.get_converters([f.get_col(meta.db_table) for f in fields])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        values: Any = cursor.fetchall()
    if converters:
        values = compiler.apply_converters(values, converters)
    names = [f.attname for f in fields]
    return [TaskModel.from_db(connection.alias, names, list(row)) for row in values]


def _set_running_sql() -> str:
    return "status = %s, attempt = attempt + 1, started = %s, worker_id = %s"


def _claim_postgresql(
    connection: Any, queues: list[str], limit: int, worker_id: int | None, now: datetime.datetime
) -> list[TaskModel]:
    # The MATERIALIZED CTE is evaluated once, so the planner cannot re-run the LIMIT
    # subquery per row and claim more than `limit` rows.
    n = _names(connection)
    placeholders = ", ".join(["%s"] * len(queues))
    sql = (
        f"WITH c AS MATERIALIZED ("
        f" SELECT id FROM {n['task']}"
        f" WHERE status = %s AND queue IN ({placeholders}) AND not_before <= %s"
        f" AND {_paused_filter(n)}"
        f" ORDER BY {ORDER} LIMIT %s FOR UPDATE SKIP LOCKED"
        f") UPDATE {n['task']} SET status = %s, attempt = {n['task']}.attempt + 1,"
        f" started = %s, worker_id = %s FROM c WHERE {n['task']}.id = c.id"
        f" RETURNING {_columns(connection, n['task'])}"
    )
    stamp = connection.ops.adapt_datetimefield_value(now)
    params = [TaskStatus.CREATED, *queues, stamp, limit, TaskStatus.RUNNING, stamp, worker_id]
    return _fetch_rows(connection, sql, params)


def _claim_sqlite(
    connection: Any, queues: list[str], limit: int, worker_id: int | None, now: datetime.datetime
) -> list[TaskModel]:
    # One statement: SQLite's write lock makes the select-and-update atomic.
    n = _names(connection)
    placeholders = ", ".join(["%s"] * len(queues))
    sql = (
        f"UPDATE {n['task']} SET {_set_running_sql()}"
        f" WHERE status = %s AND id IN ("
        f" SELECT id FROM {n['task']}"
        f" WHERE status = %s AND queue IN ({placeholders}) AND not_before <= %s"
        f" AND {_paused_filter(n)}"
        f" ORDER BY {ORDER} LIMIT %s"
        f") RETURNING {_columns(connection)}"
    )
    stamp = connection.ops.adapt_datetimefield_value(now)
    params = [
        TaskStatus.RUNNING, stamp, worker_id, TaskStatus.CREATED, TaskStatus.CREATED,
        *queues, stamp, limit,
    ]  # fmt: skip
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
