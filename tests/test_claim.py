"""Claiming ready tasks: ``TaskQuerySet.claim()`` and each dialect's claim statement."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from firefly_tasks.dialects import Claim, dialect
from firefly_tasks.models import QueueModel, TaskModel, TaskStatus, WorkerModel
from firefly_tasks.queues import pause_queue, resume_queue
from firefly_tasks.states import ENGINE_VERSION
from tests.conftest import run_at_once
from tests.testapp import tasks


def claim_statement(queues: list[str], limit: int = 100) -> tuple[str, list[Any]]:
    """This database's claim statement and its parameters (PostgreSQL and SQLite)."""
    claim = Claim(
        queues=queues,
        limit=limit,
        worker_id=None,
        now=timezone.now(),
        ready=TaskStatus.CREATED,
        running=TaskStatus.RUNNING,
        engine=ENGINE_VERSION,
    )
    return dialect(connection).claim_statement(TaskModel, QueueModel, claim)


def make_task(
    *,
    queue: str = "default",
    priority: int = 0,
    age: float = 0,
    status: str = TaskStatus.CREATED,
    params: str = "[[],{}]",
) -> TaskModel:
    """A stored row that became ready ``age`` seconds ago (negative: in the future)."""
    return TaskModel.objects.create(
        func_name=tasks.add.name,
        queue=queue,
        priority=priority,
        not_before=timezone.now() - datetime.timedelta(seconds=age),
        status=status,
        params_data=params,
    )


def pks(rows: list[TaskModel]) -> list[int]:
    return [row.pk for row in rows]


@pytest.fixture
def worker(db: None) -> WorkerModel:
    return WorkerModel.objects.create(name="claimer", hostname="localhost", pid=1)


def test_claim_orders_by_priority_then_not_before_then_id(db: None) -> None:
    lowest = make_task(priority=-5, age=100)
    a = make_task(age=10)
    c = make_task(age=20)
    d = TaskModel.objects.create(
        func_name=a.func_name, queue="default", not_before=a.not_before, params_data="[[],{}]"
    )
    urgent = make_task(priority=10, age=1)

    assert pks(TaskModel.objects.claim(["default"], 10)) == [urgent.pk, c.pk, a.pk, d.pk, lowest.pk]


def test_claim_with_a_limit_takes_the_first_rows_in_order(db: None) -> None:
    newest = make_task(age=1)
    urgent = make_task(priority=10, age=1)
    oldest = make_task(age=50)
    lowest = make_task(priority=-10, age=99)

    assert pks(TaskModel.objects.claim(["default"], 2)) == [urgent.pk, oldest.pk]
    assert pks(TaskModel.objects.claim(["default"], 2)) == [newest.pk, lowest.pk]


def test_claim_honours_the_limit(db: None) -> None:
    rows = [make_task(age=i) for i in range(5)]

    claimed = TaskModel.objects.claim(["default"], 3)

    assert len(claimed) == 3
    assert TaskModel.objects.filter(status=TaskStatus.RUNNING).count() == 3
    assert TaskModel.objects.filter(status=TaskStatus.CREATED).count() == len(rows) - 3


def test_claim_of_nothing_returns_an_empty_list(db: None) -> None:
    make_task()

    assert TaskModel.objects.claim(["default"], 0) == []
    assert TaskModel.objects.claim([], 5) == []
    assert TaskModel.objects.filter(status=TaskStatus.CREATED).count() == 1


def test_future_tasks_are_not_claimed(db: None) -> None:
    future = make_task(age=-3600)
    ready = make_task(age=1)

    assert pks(TaskModel.objects.claim(["default"], 10)) == [ready.pk]
    future.refresh_from_db()
    assert future.status == TaskStatus.CREATED
    assert future.attempt == 0


def test_future_task_is_claimed_once_its_time_has_come(db: None) -> None:
    future = make_task(age=-3600)

    later = timezone.now() + datetime.timedelta(hours=2)

    assert pks(TaskModel.objects.claim(["default"], 10, now=later)) == [future.pk]


def test_claim_takes_only_the_listed_queues(db: None) -> None:
    default = make_task(queue="default")
    emails = make_task(queue="emails")
    reports = make_task(queue="reports")

    assert pks(TaskModel.objects.claim(["emails", "reports"], 10)) == sorted(
        [emails.pk, reports.pk]
    )
    default.refresh_from_db()
    assert default.status == TaskStatus.CREATED


@pytest.mark.parametrize("status", [TaskStatus.RUNNING, TaskStatus.COMPLETED, TaskStatus.FAILED])
def test_tasks_that_are_not_created_are_not_claimed(db: None, status: str) -> None:
    make_task(status=status)

    assert TaskModel.objects.claim(["default"], 10) == []


def test_a_claimed_task_is_not_claimed_again(db: None) -> None:
    row = make_task()

    assert pks(TaskModel.objects.claim(["default"], 10)) == [row.pk]
    assert TaskModel.objects.claim(["default"], 10) == []


def test_claimed_rows_are_running_with_attempt_plus_one_and_the_worker(worker: WorkerModel) -> None:
    row = make_task(params="[[1,2],{}]")
    TaskModel.objects.filter(pk=row.pk).update(attempt=3)
    before = timezone.now()

    (claimed,) = TaskModel.objects.claim(["default"], 1, worker.pk)

    for current in (claimed, TaskModel.objects.get(pk=row.pk)):
        assert current.status == TaskStatus.RUNNING
        assert current.attempt == 4
        assert current.worker_id == worker.pk
        assert current.started is not None
        assert before <= current.started <= timezone.now()
        assert current.params == {"args": (1, 2), "kwargs": {}}
        assert current.func_name == tasks.add.name


def test_claimed_rows_carry_every_field_of_the_row(db: None) -> None:
    row = tasks.fail_with_backoff.schedule()

    (claimed,) = TaskModel.objects.claim(["default"], 1)

    assert claimed.func_name == row.func_name
    assert claimed.serializer == "json"
    assert (claimed.max_retries, claimed.retry_delay, claimed.retry_backoff) == (5, 10, True)
    assert claimed.created == row.created
    assert claimed.not_before == row.not_before


def test_paused_queue_is_not_claimed_and_resume_drains_it(db: None) -> None:
    row = make_task(queue="emails")
    pause_queue("emails", by="ops", reason="provider down")

    assert TaskModel.objects.claim(["emails"], 10) == []
    row.refresh_from_db()
    assert row.status == TaskStatus.CREATED

    resume_queue("emails")

    assert pks(TaskModel.objects.claim(["emails"], 10)) == [row.pk]


def test_pausing_one_queue_leaves_the_other_queues_claimable(db: None) -> None:
    make_task(queue="emails", priority=50)
    other = make_task(queue="default")
    pause_queue("emails")

    assert pks(TaskModel.objects.claim(["emails", "default"], 10)) == [other.pk]


def test_priority_wins_across_queues(db: None) -> None:
    make_task(queue="default", age=60)
    urgent = make_task(queue="emails", priority=50)

    assert pks(TaskModel.objects.claim(["default", "emails"], 1)) == [urgent.pk]


def test_concurrent_claims_never_take_the_same_task(transactional_db: None) -> None:
    rows = [make_task(age=i) for i in range(60)]

    def claimer() -> list[int]:
        mine: list[int] = []
        while batch := TaskModel.objects.claim(["default"], 3):
            mine += pks(batch)
        return mine

    claimed = run_at_once(claimer)

    every = [pk for mine in claimed for pk in mine]
    assert sorted(every) == sorted(pks(rows))
    assert TaskModel.objects.filter(status=TaskStatus.RUNNING, attempt=1).count() == len(rows)


@pytest.mark.skipif(connection.vendor != "mysql", reason="MariaDB's claim query plan")
def test_mariadb_candidate_query_uses_the_ready_index_without_a_filesort(
    transactional_db: None,
) -> None:
    for i in range(300):
        make_task(queue=("default", "emails", "reports")[i % 3], priority=i % 7 - 3)
    with connection.cursor() as cursor:
        # ANALYZE commits implicitly: hence transactional_db, which empties the table after.
        cursor.execute(f"ANALYZE TABLE {TaskModel._meta.db_table}")
        cursor.fetchall()
        cursor.execute(
            "EXPLAIN " + dialect(connection).candidates_sql(TaskModel),  # type: ignore[attr-defined]
            [TaskStatus.CREATED, "emails", timezone.now(), ENGINE_VERSION, 10],
        )
        columns = [c[0] for c in cursor.description]
        (plan,) = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    assert plan["key"] == "firefly_task_ready"
    assert "filesort" not in (plan["Extra"] or "")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's claim query plan")
def test_postgresql_claim_reads_each_queue_from_the_ready_index_without_a_sort(
    transactional_db: None,
) -> None:
    # Enough ready rows that a sequential scan and a sort of them all would be the plan of a
    # claim that anti-joins the paused queues to the task rows (it was, with 20,000 rows).
    TaskModel.objects.bulk_create(
        TaskModel(func_name=tasks.add.name, queue=("default", "emails")[i % 2], params_data="[]")
        for i in range(5000)
    )
    pause_queue("reports")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        sql, params = claim_statement(["default", "emails", "reports"])
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(line for (line,) in cursor.fetchall())

    assert "Index Scan using firefly_task_ready" in plan, plan
    assert f"Seq Scan on {TaskModel._meta.db_table}" not in plan, plan
    # The only sort is of the few rows the per-queue scans return, above them.
    assert "Sort Key: r.priority DESC" in plan, plan
    assert "Sort Key: firefly_tasks_taskmodel.priority" not in plan, plan


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's claim query plan")
def test_sqlite_claim_reads_each_queue_from_the_ready_index(db: None) -> None:
    queues = ["default", "emails", "reports"]
    sql, params = claim_statement(queues)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = [row[-1] for row in cursor.fetchall()]

    per_queue = [line for line in plan if "USING INDEX firefly_task_ready (queue=?)" in line]
    assert len(per_queue) == len(queues), plan
    assert not any(line.startswith(f"SCAN {TaskModel._meta.db_table}") for line in plan), plan


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's claim query plan")
def test_sqlite_claim_keeps_the_ready_index_order_with_a_big_tables_statistics(db: None) -> None:
    # What ANALYZE records next to a million finished tasks and 20,000 ready ones. With them,
    # a range on not_before tempted SQLite into a skip-scan and a sort of every ready row.
    table = TaskModel._meta.db_table
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
        (worker_index,) = [n for n, c in constraints.items() if c["columns"] == ["worker_id"]]
        stats = {
            "firefly_task_failed": "20000 1",
            "firefly_task_completed": "970001 1",
            "firefly_task_func_name": "1020001 340001",
            "firefly_task_status_queue": "1020001 255001 255001 85001 3",
            "firefly_task_ready": "20000 20000 20000 5000 1",
            worker_index: "1020001 1020001",
        }
        cursor.execute("ANALYZE")
        cursor.execute("DELETE FROM sqlite_stat1 WHERE tbl = %s", [table])
        for index, stat in stats.items():
            cursor.execute("INSERT INTO sqlite_stat1 VALUES (%s, %s, %s)", [table, index, stat])
        cursor.execute("ANALYZE sqlite_schema")  # the planner reloads the statistics
        sql, params = claim_statement(["default"])
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = [row[-1] for row in cursor.fetchall()]

    assert any("USING INDEX firefly_task_ready (queue=?)" in line for line in plan), plan
    # One sort, of the rows the per-queue scans return; none of the ready rows themselves.
    assert sum("TEMP B-TREE" in line for line in plan) == 1, plan


def test_claim_across_queues_skips_paused_ones_and_keeps_the_run_order(db: None) -> None:
    emails = make_task(queue="emails", age=30)
    urgent_reports = make_task(queue="reports", priority=5)
    default = make_task(queue="default", age=10)
    paused = make_task(queue="paused", priority=50)
    pause_queue("paused")

    claimed = TaskModel.objects.claim(["default", "emails", "reports", "paused"], 2)

    assert pks(claimed) == [urgent_reports.pk, emails.pk]
    assert pks(TaskModel.objects.claim(["default", "emails", "reports", "paused"], 5)) == [
        default.pk
    ]
    paused.refresh_from_db()
    assert paused.status == TaskStatus.CREATED
