"""The task table's indexes: partial where the database has partial indexes, whole elsewhere."""

from __future__ import annotations

import pytest
from django.db import connection

from firefly_tasks.models import TaskAttempt, TaskModel

TABLE = TaskModel._meta.db_table


def index_sql(name: str) -> str:
    """How the database describes the index ``name``."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT sql FROM sqlite_master WHERE name = %s", [name])
        else:
            cursor.execute(
                "SELECT GROUP_CONCAT(column_name ORDER BY seq_in_index) FROM "
                "information_schema.statistics WHERE table_schema = DATABASE() "
                "AND table_name = %s AND index_name = %s",
                [TABLE, name],
            )
        row = cursor.fetchone()
    assert row is not None and row[0], f"no index {name}"
    return str(row[0])


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("firefly_task_completed", "completed"),
        ("firefly_task_failed", "failed"),
        ("firefly_task_worker", "worker_id"),
    ],
)
def test_indexes_leave_out_rows_without_a_value_where_the_database_can(
    db: None, name: str, column: str
) -> None:
    sql = index_sql(name)

    if connection.features.supports_partial_indexes:
        assert "WHERE" in sql.upper() and "NOT NULL" in sql.upper(), sql
    else:
        assert sql == column  # MariaDB: the whole column, rather than no index at all


def test_ready_index_covers_only_ready_rows_where_the_database_can(db: None) -> None:
    sql = index_sql("firefly_task_ready")

    if connection.features.supports_partial_indexes:
        assert "WHERE" in sql.upper() and "created" in sql, sql
    else:
        assert sql == "status,queue,priority,not_before,id"


def test_task_name_has_one_plain_index(db: None) -> None:
    # The admin searches names with a contains, which no prefix (``_like``) index serves.
    assert "func_name" in index_sql("firefly_task_func_name")
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    on_name = [n for n, c in constraints.items() if c["columns"] == ["func_name"] and c["index"]]
    assert on_name == ["firefly_task_func_name"]


def test_an_attempts_task_is_served_by_the_unique_constraint_alone(db: None) -> None:
    table = TaskAttempt._meta.db_table
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    leading = sorted(c["columns"] for c in constraints.values() if c["columns"][:1] == ["task_id"])
    # MariaDB's foreign key constraint reuses the unique index, as every database does here.
    assert [columns for columns in leading if columns != ["task_id"]] == [["task_id", "number"]]
    assert not [n for n, c in constraints.items() if c["columns"] == ["task_id"] and c["index"]]
