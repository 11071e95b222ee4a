"""Database facts and connection hygiene: ``firefly_tasks.database``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import connection

from firefly_tasks.database import check_connection


@pytest.fixture
def conn_max_age(transactional_db: None) -> Iterator[None]:
    """Reconnect with another CONN_MAX_AGE for one test (outside any atomic block)."""
    saved = connection.settings_dict["CONN_MAX_AGE"]

    def use(value: float | None) -> None:
        connection.close()
        connection.settings_dict["CONN_MAX_AGE"] = value
        connection.ensure_connection()

    yield use
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = saved


def test_healthy_connection_is_kept_between_tasks_with_conn_max_age_zero(conn_max_age):
    conn_max_age(0)
    raw = connection.connection

    check_connection()

    assert connection.connection is raw


@pytest.mark.parametrize("max_age", [0, None], ids=["conn-max-age-0", "persistent"])
def test_connection_a_task_left_broken_is_closed_between_tasks(conn_max_age, max_age):
    if connection.vendor == "sqlite":
        pytest.skip("an SQLite connection is a file handle; Django never finds it unusable")
    conn_max_age(max_age)
    connection.connection.close()  # what a task that broke its connection leaves behind
    connection.errors_occurred = True

    check_connection()

    assert connection.connection is None
    with connection.cursor() as cursor:  # the next task reconnects
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_connection_older_than_conn_max_age_is_closed_between_tasks(conn_max_age):
    conn_max_age(0.05)
    time.sleep(0.1)

    check_connection()

    assert connection.connection is None


def test_connection_is_left_alone_inside_an_atomic_block(db):
    connection.ensure_connection()
    connection.errors_occurred = True

    check_connection()

    assert connection.connection is not None
    connection.errors_occurred = False


# The cursor of claims and completions ----------------------------------------------------


def test_claimed_rows_read_the_same_values_as_the_orm(db):
    from firefly_tasks.claim import claim_tasks
    from firefly_tasks.models import TaskModel
    from tests.testapp import tasks

    tasks.add.schedule(2, 3)

    (claimed,) = claim_tasks(["default"], 1)
    stored = TaskModel.objects.get(pk=claimed.pk)

    fields = [f.attname for f in TaskModel._meta.concrete_fields]
    assert {f: getattr(claimed, f) for f in fields} == {f: getattr(stored, f) for f in fields}
    assert claimed.started is not None and claimed.started.utcoffset() is not None
