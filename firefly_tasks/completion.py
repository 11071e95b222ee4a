"""Recording completions: the fenced ``UPDATE`` of finished rows and the ``INSERT`` of their
attempts, for one task run alone or a group committed together.

Raw SQL: compiling these statements through the ORM costs more than a fast task, and on
PostgreSQL the rows travel as arrays so that the statements' text never changes.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.db import connection

from firefly_tasks import serialization
from firefly_tasks.database import binary_placeholder, hot_cursor
from firefly_tasks.models import AttemptOutcome, TaskAttempt, TaskModel, TaskStatus, WorkerModel


@dataclass
class Completion:
    """A task whose function returned ``result`` (serialized as ``returned_data``)."""

    row: TaskModel
    result: Any
    returned_data: str
    finished: datetime.datetime


def write_completions(
    done: list[Completion], worker: WorkerModel | None, preview_length: int
) -> int:
    """Mark ``done`` completed where each row still runs the attempt that finished, insert
    their attempts, and return how many rows were completed.

    Fewer than ``len(done)`` means some row moved on to another attempt (it was recovered
    and claimed again): no attempt is inserted, and the caller must roll the transaction
    back.
    """
    if not done:
        return 0
    finished = done[-1].finished
    if connection.vendor == "postgresql":
        complete = _complete_one_postgresql if len(done) == 1 else _complete_postgresql
        updated = complete(done, finished, worker, preview_length)
    else:
        updated = _complete_by_case(done, finished, preview_length)
        if updated == len(done):
            _insert_attempts(done, worker)
    if updated != len(done):
        return updated
    for d in done:
        d.row.status, d.row.completed, d.row.returned_data = (
            TaskStatus.COMPLETED,
            finished,
            d.returned_data,
        )
    return updated


def _previews(done: list[Completion], preview_length: int) -> list[str]:
    return [serialization.value_preview(d.result, preview_length) for d in done]


def _complete_postgresql(
    done: list[Completion], finished: Any, worker: WorkerModel | None, preview_length: int
) -> int:
    """One statement, one round trip: the fenced UPDATE, and an attempt for each row it
    completed. A fenced row gets no attempt, and the count tells the caller to roll back."""
    qn = connection.ops.quote_name
    b = binary_placeholder(connection)
    sql = (
        f"WITH u AS (SELECT * FROM unnest({b}::bigint[], {b}::integer[], {b}::text[], "
        f"{b}::text[], {b}::timestamptz[], {b}::timestamptz[]) "
        "AS u(id, attempt, returned, preview, started, finished)), "
        f"done AS (UPDATE {qn(TaskModel._meta.db_table)} AS t "
        "SET status = %s, completed = %s, error = '', traceback = '', "
        "returned = u.returned, returned_preview = u.preview FROM u "
        "WHERE t.id = u.id AND t.attempt = u.attempt AND t.status = %s RETURNING t.id) "
        f"INSERT INTO {qn(TaskAttempt._meta.db_table)} (task_id, number, worker_id, "
        "worker_name, started, finished, outcome, error, traceback) "
        "SELECT u.id, u.attempt, %s, %s, u.started, u.finished, %s, '', '' "
        "FROM u JOIN done ON done.id = u.id"
    )
    params = [
        [d.row.pk for d in done],
        [d.row.attempt for d in done],
        [d.returned_data for d in done],
        _previews(done, preview_length),
        [d.row.started for d in done],
        [d.finished for d in done],
        TaskStatus.COMPLETED,
        finished,
        TaskStatus.RUNNING,  # the fence: still running the attempt that finished
        worker.pk if worker else None,
        worker.name if worker else "",
        AttemptOutcome.COMPLETED,
    ]
    with hot_cursor(connection) as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _complete_one_postgresql(
    done: list[Completion], finished: Any, worker: WorkerModel | None, preview_length: int
) -> int:
    """The same statement for one task (a slow one, run alone): values instead of arrays,
    which the server plans in a fraction of the time."""
    qn = connection.ops.quote_name
    sql = (
        f"WITH done AS (UPDATE {qn(TaskModel._meta.db_table)} "
        "SET status = %s, completed = %s, error = '', traceback = '', "
        "returned = %s, returned_preview = %s "
        "WHERE id = %s AND attempt = %s AND status = %s RETURNING id, attempt) "
        f"INSERT INTO {qn(TaskAttempt._meta.db_table)} (task_id, number, worker_id, "
        "worker_name, started, finished, outcome, error, traceback) "
        "SELECT id, attempt, %s, %s, %s, %s, %s, '', '' FROM done"
    )
    (d,) = done
    params = [
        TaskStatus.COMPLETED,
        finished,
        d.returned_data,
        _previews(done, preview_length)[0],
        d.row.pk,
        d.row.attempt,
        TaskStatus.RUNNING,  # the fence: still running the attempt that finished
        worker.pk if worker else None,
        worker.name if worker else "",
        d.row.started,
        d.finished,
        AttemptOutcome.COMPLETED,
    ]
    with hot_cursor(connection) as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _complete_by_case(done: list[Completion], finished: Any, preview_length: int) -> int:
    """SQLite and MariaDB: one UPDATE whose values differ by id through CASE."""
    qn = connection.ops.quote_name
    params: list[Any] = [
        TaskStatus.COMPLETED,
        connection.ops.adapt_datetimefield_value(finished),
    ]

    def by_id(values: list[Any]) -> str:
        if all(value == values[0] for value in values):
            params.append(values[0])
            return "%s"
        for item, value in zip(done, values, strict=True):
            params.extend((item.row.pk, value))
        whens = " ".join(["WHEN %s THEN %s"] * len(done))
        return f"CASE {qn('id')} {whens} END"

    returned = by_id([d.returned_data for d in done])
    previews = by_id(_previews(done, preview_length))
    ids = [d.row.pk for d in done]
    params += ids
    # The fence: each row must still be running the attempt that finished.
    attempts = by_id([d.row.attempt for d in done])
    params.append(TaskStatus.RUNNING)
    sql = (
        f"UPDATE {qn(TaskModel._meta.db_table)} SET status = %s, completed = %s, "
        f"error = '', traceback = '', returned = {returned}, returned_preview = {previews} "
        f"WHERE id IN ({', '.join(['%s'] * len(ids))}) AND attempt = {attempts} "
        f"AND status = %s"
    )
    with hot_cursor(connection) as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _insert_attempts(done: list[Completion], worker: WorkerModel | None) -> None:
    """The completed attempts in one multi-row INSERT."""
    qn = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    worker_id = worker.pk if worker else None
    worker_name = worker.name if worker else ""
    columns = ["task_id", "number", "worker_id", "worker_name", "started", "finished"]
    columns.append("outcome")
    params: list[Any] = []
    for d in done:
        params += [
            d.row.pk,
            d.row.attempt,
            worker_id,
            worker_name,
            adapt(d.row.started),
            adapt(d.finished),
            AttemptOutcome.COMPLETED,
        ]
    row_sql = f"({', '.join(['%s'] * len(columns))}, '', '')"
    sql = (
        f"INSERT INTO {qn(TaskAttempt._meta.db_table)} "
        f"({', '.join(qn(c) for c in columns)}, {qn('error')}, {qn('traceback')}) "
        f"VALUES {', '.join([row_sql] * len(done))}"
    )
    with hot_cursor(connection) as cursor:
        cursor.execute(sql, params)
