"""The statements of workflows: part of every dialect (``Dialect`` inherits them).

Edges (``firefly_tasks.dependencies``) run on every group commit: a read of the edges of the
tasks it finished (nothing to write for tasks nothing waits for), and one
``UPDATE ... RETURNING`` a waiting task (two statements on MariaDB, which returns no rows from
an ``UPDATE``). Progress (``firefly_tasks.progress``) is written on a connection of its own, in
autocommit, so that it is visible at once and never waits for, or holds, the task's own
transaction.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

from django.db import models

# How long a progress write waits for SQLite's write lock before it is dropped: a task's
# own transaction may hold it (progress is the latest value, not a log).
SQLITE_BUSY_MS = 50


class Workflows:
    connection: Any
    qn: Callable[[str], str]
    adapt: Callable[[datetime.datetime | None], Any]
    hot_cursor: Callable[[], Any]
    binary_placeholder: Callable[[], str]
    max_params: Callable[[], int | None]

    def returns_from_update(self) -> bool:
        """Whether an ``UPDATE`` can return the rows it changed (``RETURNING``)."""
        return self.connection.vendor in ("postgresql", "sqlite")

    def children_of(
        self, edge_model: type[models.Model], parents: list[int]
    ) -> list[tuple[int, int]]:
        """The (parent, child) of every edge of the tasks ``parents``, in the edges' order.
        A locking read on MariaDB: its repeatable read would not see an edge committed since
        this transaction's first read (a ``depends_on`` added while the parent ran)."""
        table = self.qn(edge_model._meta.db_table)
        vendor = self.connection.vendor
        # PostgreSQL: one array, which the server parses and plans in a fraction of the time
        # of a list of a completed group's hundreds of ids.
        if vendor == "postgresql":
            marks = f"= ANY({self.binary_placeholder()}::bigint[])"
        else:
            marks = f"IN ({', '.join(['%s'] * len(parents))})"
        lock = " LOCK IN SHARE MODE" if vendor == "mysql" else ""
        sql = f"SELECT parent_id, child_id FROM {table} WHERE parent_id {marks} ORDER BY id"
        with self.hot_cursor() as cursor:
            cursor.execute(sql + lock, [parents] if vendor == "postgresql" else parents)
            return [(parent, child) for parent, child in cursor.fetchall()]

    def count_down(
        self, task_model: type[models.Model], child: int, settled: int, waiting: str
    ) -> int | None:
        """Take ``settled`` off the count of task ``child`` while it is in state ``waiting``
        (a negative ``settled`` puts tasks back: requeued); the count left (the row is this
        transaction's until it ends), or None if it is no longer waiting."""
        table = self.qn(task_model._meta.db_table)
        update = f"UPDATE {table} SET waiting_for = waiting_for - %s WHERE id = %s AND status = %s"
        with self.hot_cursor() as cursor:
            if self.returns_from_update():
                cursor.execute(f"{update} RETURNING waiting_for", [settled, child, waiting])
                found = cursor.fetchone()
                return None if found is None else int(found[0])
            cursor.execute(update, [settled, child, waiting])
            if not cursor.rowcount:
                return None
            cursor.execute(f"SELECT waiting_for FROM {table} WHERE id = %s", [child])
            return int(cursor.fetchone()[0])

    def insert_edges(
        self, edge_model: type[models.Model], child: int, edges: Sequence[tuple[int, int]]
    ) -> None:
        """Insert the edges of task ``child`` to each (parent, position) of ``edges``: one
        statement of two arrays on PostgreSQL, multi-row ``INSERT``s elsewhere (a group of
        10,000 members has 10,000 edges)."""
        table = self.qn(edge_model._meta.db_table)
        head = f"INSERT INTO {table} (parent_id, child_id, position)"
        with self.hot_cursor() as cursor:
            if self.connection.vendor == "postgresql":
                cursor.execute(
                    f"{head} SELECT parent, %s, position "
                    "FROM unnest(%s::bigint[], %s::bigint[]) AS edge(parent, position)",
                    [child, [p for p, _ in edges], [n for _, n in edges]],
                )
                return
            chunk = max(1, (self.max_params() or 30_000) // 3)
            for start in range(0, len(edges), chunk):
                part = edges[start : start + chunk]
                values = ", ".join(["(%s, %s, %s)"] * len(part))
                params = [value for p, n in part for value in (p, child, n)]
                cursor.execute(f"{head} VALUES {values}", params)

    def progress_connection(self) -> Any:
        """A new connection of its own, in autocommit."""
        raw = self.connection.get_new_connection(self.connection.get_connection_params())
        vendor = self.connection.vendor
        if vendor == "postgresql":
            raw.autocommit = True
        elif vendor == "mysql":
            raw.autocommit(True)
        else:
            raw.isolation_level = None
            raw.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
        return raw

    def write_progress(self, raw: Any, model: type[models.Model], values: dict[str, Any]) -> None:
        """Insert or replace the progress row ``values`` (keyed by ``task_id``) on ``raw``."""
        values = {
            k: self.adapt(v) if isinstance(v, datetime.datetime) else v for k, v in values.items()
        }
        names = [self.qn(name) for name in values]
        mark = "?" if self.connection.vendor == "sqlite" else "%s"
        rest = [name for name in names if name != self.qn("task_id")]
        if self.connection.vendor == "mysql":
            upsert = "ON DUPLICATE KEY UPDATE " + ", ".join(f"{n} = VALUES({n})" for n in rest)
        else:
            upsert = f"ON CONFLICT ({self.qn('task_id')}) DO UPDATE SET " + ", ".join(
                f"{n} = excluded.{n}" for n in rest
            )
        sql = (
            f"INSERT INTO {self.qn(model._meta.db_table)} ({', '.join(names)}) "
            f"VALUES ({', '.join([mark] * len(names))}) {upsert}"
        )
        cursor = raw.cursor()
        try:
            cursor.execute(sql, list(values.values()))
        finally:
            cursor.close()
