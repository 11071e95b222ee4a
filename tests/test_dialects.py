"""What differs by database, and connection hygiene: ``firefly_tasks.dialects``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from firefly_tasks.dialects import dialect
from tests.testapp.models import Note


@pytest.fixture
def conn_max_age(transactional_db: None) -> Iterator[Callable[[float | None], None]]:
    """Reconnect with another CONN_MAX_AGE for one test (outside any atomic block)."""
    saved = connection.settings_dict["CONN_MAX_AGE"]

    def use(value: float | None) -> None:
        connection.close()
        connection.settings_dict["CONN_MAX_AGE"] = value
        connection.ensure_connection()

    yield use
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = saved


def test_healthy_connection_is_kept_between_tasks_with_conn_max_age_zero(
    conn_max_age: Callable[[float | None], None],
) -> None:
    conn_max_age(0)
    raw = connection.connection

    dialect(connection).check_connection()

    assert connection.connection is raw


@pytest.mark.parametrize("max_age", [0, None], ids=["conn-max-age-0", "persistent"])
def test_connection_a_task_left_broken_is_closed_between_tasks(
    conn_max_age: Callable[[float | None], None], max_age: float | None
) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("an SQLite connection is a file handle; Django never finds it unusable")
    conn_max_age(max_age)
    connection.connection.close()  # what a task that broke its connection leaves behind
    connection.errors_occurred = True

    dialect(connection).check_connection()

    assert connection.connection is None
    with connection.cursor() as cursor:  # the next task reconnects
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_connection_older_than_conn_max_age_is_closed_between_tasks(
    conn_max_age: Callable[[float | None], None],
) -> None:
    conn_max_age(0.05)
    time.sleep(0.1)

    dialect(connection).check_connection()

    assert connection.connection is None


def test_connection_is_left_alone_inside_an_atomic_block(db: None) -> None:
    connection.ensure_connection()
    connection.errors_occurred = True

    dialect(connection).check_connection()

    assert connection.connection is not None
    connection.errors_occurred = False


# The cursor of claims and completions ----------------------------------------------------


def test_claimed_rows_read_the_same_values_as_the_orm(db: None) -> None:
    from firefly_tasks.models import TaskModel
    from tests.testapp import tasks

    tasks.add.schedule(2, 3)

    (claimed,) = TaskModel.objects.claim(["default"], 1)
    stored = TaskModel.objects.get(pk=claimed.pk)

    fields = [f.attname for f in TaskModel._meta.concrete_fields]
    assert {f: getattr(claimed, f) for f in fields} == {f: getattr(stored, f) for f in fields}
    assert claimed.started is not None and claimed.started.utcoffset() is not None


def test_claimed_rows_are_instances_as_the_orm_loads_them(db: None) -> None:
    from django.db.models.signals import post_init

    from firefly_tasks.models import TaskModel, WorkerModel
    from tests.testapp import tasks

    worker = WorkerModel.objects.create(name="w", hostname="h", pid=1)
    tasks.add.schedule(2, 3)
    tasks.add.schedule(4, 5)

    (claimed,) = TaskModel.objects.claim(["default"], 1, worker.pk)
    assert (claimed._state.adding, claimed._state.db) == (False, "default")
    assert claimed.get_deferred_fields() == set()
    assert claimed.worker == worker  # the foreign key's descriptor reads the loaded id
    claimed.priority = 7
    claimed.save(update_fields=["priority"])
    assert TaskModel.objects.get(pk=claimed.pk).priority == 7

    # Where something listens to the model's init signals, rows are built through __init__.
    seen: list[object] = []

    def listener(instance: object, **kwargs: object) -> None:
        seen.append(instance)

    post_init.connect(listener, sender=TaskModel)
    try:
        (second,) = TaskModel.objects.claim(["default"], 1, worker.pk)
    finally:
        post_init.disconnect(listener, sender=TaskModel)
    assert seen == [second]


def test_scheduled_rows_are_instances_as_the_model_builds_them(db: None) -> None:
    from django.db.models.signals import pre_init

    from firefly_tasks.calls import build_rows
    from firefly_tasks.models import TaskModel
    from tests.testapp import tasks

    now = timezone.now()
    calls = [((1, 2), {}), ((3,), {"b": 4})]
    built = build_rows(tasks.add.name, tasks.add.options, calls, now=now)
    fields = [f.attname for f in TaskModel._meta.concrete_fields]
    for row in built:
        model_built = TaskModel(*[getattr(row, f) for f in fields])  # type: ignore[misc]
        assert {f: getattr(row, f) for f in fields} == {f: getattr(model_built, f) for f in fields}
        assert (row._state.adding, row._state.db) == (True, None)
        assert row.pk is None and row.get_deferred_fields() == set()
    assert [r.params_data for r in built] != [built[0].params_data] * 2  # a row a call
    stored = TaskModel.objects.insert_calls(built)
    assert [TaskModel.objects.get(pk=r.pk).params_data for r in stored] == [
        r.params_data for r in built
    ]

    # Where something listens to the model's init signals, rows are built through __init__.
    seen: list[object] = []

    def listener(**kwargs: object) -> None:
        seen.append(kwargs["sender"])

    pre_init.connect(listener, sender=TaskModel)
    try:
        (row,) = build_rows(tasks.add.name, tasks.add.options, calls[:1], now=now)
    finally:
        pre_init.disconnect(listener, sender=TaskModel)
    assert seen == [TaskModel]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's placeholders")
def test_the_sqlite_hot_cursor_converts_placeholders_as_django_does(db: None) -> None:
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):  # converted, then the conversion remembered
        with CaptureQueriesContext(connection) as seen, dialect(connection).hot_cursor() as c:
            c.execute("SELECT %s, '%%s', %s", [1, "two"])
            assert c.fetchone() == (1, "%s", "two")
        assert len(seen.captured_queries) == 1
    with dialect(connection).hot_cursor() as cursor:
        cursor.execute("SELECT %(a)s, %(a)s", {"a": 3})  # Django's named style too
        assert cursor.fetchone() == (3, 3)
        long = "SELECT " + ", ".join(["%s"] * 1500)  # longer than the texts it keeps
        cursor.execute(long, list(range(1500)))
        assert cursor.fetchone() == tuple(range(1500))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's hot cursor")
@pytest.mark.django_db(transaction=True)
def test_the_postgresql_hot_cursor_is_one_a_connection_and_new_after_a_reconnect() -> None:
    from django.test.utils import CaptureQueriesContext

    hot = dialect(connection)
    with hot.hot_cursor() as first:
        first.execute("SELECT %s::int", [1])
        assert first.fetchone() == (1,)
    with CaptureQueriesContext(connection) as seen, hot.hot_cursor() as second:
        second.execute("SELECT %s::text", ["two"])  # the same cursor, another statement
        assert second.fetchone() == ("two",)
    assert second.cursor is first.cursor
    assert len(seen.captured_queries) == 1  # still logged, as connection.cursor()'s are

    connection.close()  # a new connection gets a cursor of its own
    with hot.hot_cursor() as third:
        third.execute("SELECT %s::int", [3])
        assert third.fetchone() == (3,)
    assert third.cursor is not first.cursor
    assert third.cursor.connection is connection.connection


# A task's transaction on SQLite -----------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's single write lock")
@pytest.mark.django_db(transaction=True)
def test_a_first_query_locked_out_leaves_the_transaction_to_begin_at_the_next() -> None:
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        try:
            with transaction.atomic():  # BEGIN IMMEDIATE: the write lock, until release
                Note.objects.create(text="holder")
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    assert locked.wait(10)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout = 50")
    try:
        atomic = dialect(connection).atomic_from_first_query()
        with pytest.raises(RuntimeError, match="roll back"), atomic:
            # A raw query, which Django does not mark the block broken for (an ORM write
            # would), swallowed: its BEGIN IMMEDIATE timed out.
            with pytest.raises(OperationalError, match="locked"), connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            release.set()
            holder.join(10)
            Note.objects.create(text="inside")  # begins the transaction after all
            raise RuntimeError("roll back")
    finally:
        release.set()
        holder.join(10)
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout = 30000")
    # Rolled back with the block: it was written in its transaction, not in autocommit.
    assert list(Note.objects.values_list("text", flat=True)) == ["holder"]
