"""The statements of workflows (``firefly_tasks.dependencies``): part of every dialect
(``Dialect`` inherits them). They run on every group commit: a read of the edges of the tasks
it finished (nothing to write for tasks nothing waits for), and one ``UPDATE ... RETURNING`` a
waiting task (two statements on MariaDB, which returns no rows from an ``UPDATE``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models


class EdgeStatements:
    connection: Any
    qn: Callable[[str], str]
    hot_cursor: Callable[[], Any]

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
        marks = ", ".join(["%s"] * len(parents))
        lock = " LOCK IN SHARE MODE" if self.connection.vendor == "mysql" else ""
        sql = f"SELECT parent_id, child_id FROM {table} WHERE parent_id IN ({marks}) ORDER BY id"
        with self.hot_cursor() as cursor:
            cursor.execute(sql + lock, parents)
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
