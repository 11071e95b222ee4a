"""The Django side of the benchmarks: ``python -m bench.agent COMMAND 'JSON-ARGS'``.

Runs inside the Python of the system under test (Firefly's checkout, or a peer's virtualenv),
with ``DJANGO_SETTINGS_MODULE`` and ``FIREFLY_BENCH_SYSTEM`` set by the orchestrator, and
prints one JSON object on its last line of output. Firefly is used only through its public
surface: ``@task`` functions' ``schedule()``/``schedule_many()``, its documented models and
fields, ``firefly_tasks.testing.run_pending_tasks()`` and the Django admin it registers.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import django

SYSTEM = os.environ.get("FIREFLY_BENCH_SYSTEM", "firefly")
# "ffqueue": Firefly's tables are on the "queue" alias (bench/dbconf.py).
ALIAS = "queue" if os.environ.get("FIREFLY_BENCH_QUEUE_DB") == "1" else "default"


def queue_connection() -> Any:
    """The connection to the database that holds the queue's tables."""
    from django.db import connections

    return connections[ALIAS]


# One adapter per Django system ---------------------------------------------------------------


class Adapter:
    """What the benchmarks need from a Django task system, through its own public API."""

    apps: tuple[str, ...] = ()  # app labels whose tables are the queue's
    admin_apps: tuple[str, ...] = ()  # app labels whose admin pages the dashboard figure times
    done_status = "completed"
    done_field = "completed"
    ready_filter: dict[str, Any] = {}

    @property
    def model(self) -> Any:
        raise NotImplementedError

    def task(self, workload: str) -> Any:
        raise NotImplementedError

    def schedule(self, workload: str) -> Any:
        """One task, the way a user schedules one; returns its primary key."""
        raise NotImplementedError

    def schedule_many(self, workload: str, n: int) -> None:
        raise NotImplementedError

    def has_schedule_many(self) -> bool:
        return False

    def started_at(self, pks: list[Any]) -> dict[Any, float | None]:
        """For the latency figure: when each ``stamp`` task started (its return value)."""
        raise NotImplementedError

    # How row g of a million finished tasks differs from the template row, field by field
    # (see ``Seeder``). Fields not named keep the template's value.
    statuses: tuple[tuple[int, str], ...] = ()  # (percentile bound, status)

    def finished_spec(self) -> dict[str, tuple[Any, ...]]:
        raise NotImplementedError


class FireflyAdapter(Adapter):
    apps = ("firefly_tasks",)
    admin_apps = ("firefly_tasks", "firefly_admin")
    ready_filter = {"status": "created"}

    @property
    def model(self) -> Any:
        from firefly_tasks.models import TaskModel

        return TaskModel

    def task(self, workload: str) -> Any:
        from bench.benchapp import tasks

        return getattr(tasks, workload)

    def schedule(self, workload: str) -> Any:
        return self.task(workload).schedule().pk

    def has_schedule_many(self) -> bool:
        return True

    def schedule_many(self, workload: str, n: int) -> None:
        self.task(workload).schedule_many([()] * n)

    def started_at(self, pks: list[Any]) -> dict[Any, float | None]:
        rows = self.model.objects.filter(pk__in=pks)
        return {r.pk: (r.returned if r.status == "completed" else None) for r in rows}

    statuses = ((97, "completed"), (99, "failed"), (100, "cancelled"))

    def finished_spec(self) -> dict[str, tuple[Any, ...]]:
        return {
            "func_name": ("cycle", [self.task(w).name for w in ("noop", "sleep10", "stamp")]),
            "status": ("status",),
            "created": ("time", 0.0),
            "not_before": ("time", 0.0),
            "started": ("time_when", ("completed", "failed"), 0.001),
            "completed": ("time_when", ("completed",), 0.005),
            "failed": ("time_when", ("failed",), 0.005),
            "cancelled": ("time_when", ("cancelled",), 0.005),
            "attempt": ("when", ("cancelled",), 0, 1),
            "worker": ("value", None),
            "error": ("when", ("failed",), "RuntimeError: seeded failure", ""),
            "returned_data": ("when_tpl", ("failed", "cancelled"), None),
            "returned_preview": ("when_tpl", ("failed", "cancelled"), ""),
        }


class Ff04Adapter(Adapter):
    apps = ("django_firefly_tasks",)
    admin_apps = ("django_firefly_tasks",)
    ready_filter = {"status": "created"}

    @property
    def model(self) -> Any:
        from django_firefly_tasks.models import TaskModel

        return TaskModel

    def task(self, workload: str) -> Any:
        from bench.peers.ff04 import tasks

        return getattr(tasks, workload)

    def schedule(self, workload: str) -> Any:
        return self.task(workload).schedule().pk

    def schedule_many(self, workload: str, n: int) -> None:
        # 0.4.0 has no bulk API: the rows its schedule() would write, in one INSERT.
        from django_firefly_tasks._private import consts
        from django_firefly_tasks._private.utils import get_func_path, serialize_object

        func = self.task(workload).__wrapped__
        params = serialize_object({"args": (), "kwargs": {}})
        rows = [
            self.model(
                func_name=get_func_path(func),
                raw_params=params,
                not_before=None,
                queue=consts.DEFAULT_QUEUE,
                status="created",
                retry_delay=consts.RETRY_DELAY,
                max_retries=consts.MAX_RETRIES,
            )
            for _ in range(n)
        ]
        self.model.objects.bulk_create(rows, batch_size=5000)

    def started_at(self, pks: list[Any]) -> dict[Any, float | None]:
        rows = self.model.objects.filter(pk__in=pks)
        return {r.pk: (r.returned if r.status == "completed" else None) for r in rows}

    statuses = ((98, "completed"), (100, "failed"))

    def finished_spec(self) -> dict[str, tuple[Any, ...]]:
        return {
            "status": ("status",),
            "created": ("time", 0.0),
            "completed": ("time_when", ("completed",), 0.005),
            "failed": ("time_when", ("failed",), 0.005),
        }


class DtdbAdapter(Adapter):
    apps = ("django_tasks_database",)
    admin_apps = ("django_tasks_database",)
    done_status = "SUCCESSFUL"
    done_field = "finished_at"
    ready_filter = {"status": "READY"}

    @property
    def model(self) -> Any:
        from django_tasks_db.models import DBTaskResult

        return DBTaskResult

    def task(self, workload: str) -> Any:
        from bench.peers.dtdb import tasks

        return getattr(tasks, workload)

    def schedule(self, workload: str) -> Any:
        return self.task(workload).enqueue().id

    def schedule_many(self, workload: str, n: int) -> None:
        # django-tasks has no bulk enqueue: the rows its enqueue() would write, in one INSERT.
        from django_tasks_db.models import get_date_max

        task = self.task(workload)
        rows = [
            self.model(
                args_kwargs={"args": [], "kwargs": {}},
                priority=task.priority,
                task_path=task.module_path,
                queue_name=task.queue_name,
                run_after=get_date_max(),
                backend_name="default",
            )
            for _ in range(n)
        ]
        self.model.objects.bulk_create(rows, batch_size=5000)

    def started_at(self, pks: list[Any]) -> dict[Any, float | None]:
        rows = self.model.objects.filter(pk__in=pks)
        return {str(r.pk): (r.return_value if r.status == "SUCCESSFUL" else None) for r in rows}

    statuses = ((98, "SUCCESSFUL"), (100, "FAILED"))

    def finished_spec(self) -> dict[str, tuple[Any, ...]]:
        return {
            "id": ("uuid",),
            "status": ("status",),
            "enqueued_at": ("time", 0.0),
            "started_at": ("time", 0.001),
            "finished_at": ("time", 0.005),
        }


ADAPTERS = {"firefly": FireflyAdapter, "ff04": Ff04Adapter, "dtdb": DtdbAdapter}


# Commands -------------------------------------------------------------------------------------


def cmd_migrate(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    from django.conf import settings
    from django.core.management import call_command

    if "queue" in settings.DATABASES:  # "ffqueue": create the application database beside it
        _create_database(settings.DATABASES["default"])
        call_command("migrate", verbosity=0, interactive=False, database="queue")
    call_command("migrate", verbosity=0, interactive=False)
    return {}


def _create_database(config: dict[str, Any]) -> None:
    engine, name = config["ENGINE"], str(config["NAME"])
    if engine.endswith("postgresql"):
        import psycopg

        params = {k.lower(): config[k] for k in ("HOST", "PORT", "USER", "PASSWORD")}
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    elif engine.endswith("mysql"):
        import MySQLdb

        conn = MySQLdb.connect(
            host=config["HOST"], port=int(config["PORT"]), user=config["USER"],
            password=config["PASSWORD"], autocommit=True,
        )  # fmt: skip
        conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        conn.close()


def queue_models(a: Adapter) -> list[Any]:
    from django.apps import apps

    return [m for label in a.apps for m in apps.get_app_config(label).get_models()]


def cmd_reset(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    """Empty the queue's tables (tasks, attempts, workers...)."""
    from django.core.management.color import no_style
    from django.db import transaction

    connection = queue_connection()

    tables = [m._meta.db_table for m in queue_models(a)]
    # One transaction, as `manage.py flush` does: foreign keys are checked at its end.
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for sql in connection.ops.sql_flush(no_style(), tables, reset_sequences=False):
            cursor.execute(sql)
    return {"tables": tables}


def cmd_seed(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    if args.get("reset"):
        cmd_reset(a, {})
    n, chunk = args["n"], args.get("chunk", 5000)
    began = time.perf_counter()
    left = n
    while left > 0:
        a.schedule_many(args["workload"], min(chunk, left))
        left -= chunk
    return {"seconds": time.perf_counter() - began, "n": n}


def cmd_ready(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    return {"ready": a.model.objects.filter(**a.ready_filter).count()}


def cmd_stats(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    """Finished tasks and the span of their completion times (as Unix seconds)."""
    from django.db.models import Count, Max, Min

    qs = a.model.objects.filter(status=a.done_status)
    if args.get("since") is not None:
        since = datetime.datetime.fromtimestamp(args["since"], datetime.UTC)
        qs = qs.filter(**{f"{a.done_field}__gte": since})
    agg = qs.aggregate(n=Count("pk"), first=Min(a.done_field), last=Max(a.done_field))
    by_status = dict(a.model.objects.values_list("status").annotate(Count("pk")).order_by())
    return {
        "done": agg["n"],
        "first": agg["first"].timestamp() if agg["first"] else None,
        "last": agg["last"].timestamp() if agg["last"] else None,
        "by_status": by_status,
    }


def cmd_max_pk(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    from django.db.models import Max

    return {"max_pk": a.model.objects.aggregate(m=Max("pk"))["m"]}


# Enqueue -------------------------------------------------------------------------------------


def template_insert(a: Adapter) -> tuple[str, list[Any], Any]:
    """A raw single-row ``INSERT`` of exactly the row ``schedule()`` writes, and a DB-API
    connection in autocommit to run it on: the ceiling a single ``schedule()`` is held to.
    On PostgreSQL that is a plain psycopg connection (server-side parameter binding), not
    Django's, whose client-side binding would make the "raw" side slow in Python; it prepares
    statements exactly when Django's connection does (``OPTIONS["prepare_threshold"]``,
    off by default), so that both sides parse and plan alike."""
    connection = queue_connection()

    pk = a.schedule("noop")
    model = a.model
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and _auto_pk(f))]
    values = model.objects.filter(pk=pk).values_list(*[f.attname for f in fields]).get()
    prepped: list[Any] = []
    for f, value in zip(fields, values, strict=True):
        if f.primary_key:  # e.g. a UUID key: each raw row gets a new one
            value = uuid.uuid4()
        prepped.append(f.get_db_prep_save(value, connection))
    qn = connection.ops.quote_name
    cols = ", ".join(qn(f.column) for f in fields)
    mark = "?" if connection.vendor == "sqlite" else "%s"
    marks = ", ".join([mark] * len(fields))
    sql = f"INSERT INTO {qn(model._meta.db_table)} ({cols}) VALUES ({marks})"
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        threshold = getattr(connection.connection, "prepare_threshold", None)
        raw = raw_postgres(prepare_threshold=threshold)
        prepped = [_plain(v) for v in prepped]
    else:
        raw = connection.connection
    return sql, prepped, raw


def raw_postgres(prepare_threshold: int | None) -> Any:
    """A plain psycopg connection in autocommit to Django's database."""
    import psycopg

    connection = queue_connection()

    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"] or None,
        host=db["HOST"], port=db["PORT"], autocommit=True,
        prepare_threshold=prepare_threshold,
    )  # fmt: skip


def _plain(value: Any) -> Any:
    """Django's psycopg wrappers (e.g. its Jsonb) as plain psycopg values."""
    try:
        from psycopg.types.json import Jsonb
    except ImportError:  # pragma: no cover
        return value
    if isinstance(value, Jsonb):
        return Jsonb(value.obj)
    return value


def _auto_pk(field: Any) -> bool:
    from django.db import models

    return isinstance(field, models.AutoField | models.BigAutoField | models.SmallAutoField)


def cmd_enqueue(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    """Single ``schedule()`` in autocommit vs a raw single-row insert, interleaved in rounds;
    then ``schedule_many`` in calls of ``chunk`` (if the system has it) vs raw multi-row."""
    connection = queue_connection()

    rounds, per_round = args.get("rounds", 5), args.get("per_round", 200)
    chunk = args.get("chunk", 1000)
    sql, params, raw_conn = template_insert(a)
    # On PostgreSQL, also the same INSERT prepared after 5 runs (psycopg's own default) when
    # Django's connection does not prepare: the floor with parsing and planning skipped.
    prepared_conn = None
    if connection.vendor == "postgresql" and raw_conn.prepare_threshold is None:
        prepared_conn = raw_postgres(prepare_threshold=5)
    pk_field = a.model._meta.pk
    uuid_pk = not _auto_pk(pk_field)
    single: list[float] = []
    raw: list[float] = []
    raw_prepared: list[float] = []
    for _ in range(rounds):
        for _ in range(per_round):
            t0 = time.perf_counter()
            a.schedule("noop")
            single.append(time.perf_counter() - t0)
        for conn, times in ((raw_conn, raw), (prepared_conn, raw_prepared)):
            if conn is None:
                continue
            cursor = conn.cursor()
            for _ in range(per_round):
                if uuid_pk:
                    params = [_new_uuid(connection, params[0]), *params[1:]]
                t0 = time.perf_counter()
                cursor.execute(sql, params)
                times.append(time.perf_counter() - t0)
            cursor.close()
    if prepared_conn is not None:
        prepared_conn.close()
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        a.schedule("noop")
    result: dict[str, Any] = {
        "queries_per_call": len(ctx.captured_queries),
        "single_ms": statistics.median(single) * 1000,
        "raw_single_ms": statistics.median(raw) * 1000,
        "single_per_s": 1 / statistics.median(single),
        "raw_single_per_s": 1 / statistics.median(raw),
        "raw_prepared_ms": statistics.median(raw_prepared) * 1000 if raw_prepared else None,
        "prepare_threshold": getattr(raw_conn, "prepare_threshold", None),
    }
    n = args.get("many", 20_000)
    if a.has_schedule_many():
        t0 = time.perf_counter()
        for _ in range(n // chunk):
            a.schedule_many("noop", chunk)
        result["many_per_s"] = n / (time.perf_counter() - t0)
    # Raw multi-row INSERT of the same rows: the bulk ceiling on this table.
    if not uuid_pk:
        head, one = sql.split(" VALUES ")
        cursor = raw_conn.cursor()
        t0 = time.perf_counter()
        for _ in range(n // chunk):
            cursor.execute(f"{head} VALUES {', '.join([one] * chunk)}", params * chunk)
        result["raw_many_per_s"] = n / (time.perf_counter() - t0)
        if connection.vendor == "postgresql":  # and COPY, the fastest way in
            copy_sql = head.replace("INSERT INTO", "COPY", 1) + " FROM STDIN"
            t0 = time.perf_counter()
            for _ in range(n // chunk):
                with cursor.copy(copy_sql) as copy:
                    for _ in range(chunk):
                        copy.write_row(params)
            result["raw_copy_per_s"] = n / (time.perf_counter() - t0)
        cursor.close()
    return result


def _new_uuid(connection: Any, old: Any) -> Any:
    value = uuid.uuid4()
    return value.hex if isinstance(old, str) else value


# Latency ---------------------------------------------------------------------------------------


def cmd_latency(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    """Schedule ``stamp`` tasks at a steady rate and report, per task, the delay between the
    commit of its ``schedule()`` (autocommit: when the call returns) and its start."""
    samples, interval = args.get("samples", 200), args.get("interval", 0.025)
    committed: dict[Any, float] = {}
    next_at = time.perf_counter()
    for _ in range(samples):
        pk = a.schedule("stamp")
        committed[str(pk)] = time.time()
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
    deadline = time.monotonic() + args.get("wait", 30)
    started: dict[Any, float | None] = {}
    while time.monotonic() < deadline:
        started = {str(k): v for k, v in a.started_at(list(committed)).items()}
        if all(started.get(k) is not None for k in committed):
            break
        time.sleep(0.2)
    delays = [(started[k] - committed[k]) * 1000 for k in committed if started.get(k) is not None]
    return {"delays_ms": delays, "missing": samples - len(delays)}


# A million finished tasks ---------------------------------------------------------------------


class Seeder:
    """``INSERT … SELECT`` of n rows generated by the database itself from a series
    (``generate_series`` on PostgreSQL, the Sequence engine's ``seq_0_to_N`` on MariaDB, a
    recursive CTE on SQLite), cloned from a template row: faster than streaming a million
    rows through Python with COPY or multi-row INSERTs. Rows g < ``recent`` are spread over
    the last hour, the others over the 7 days before it (newest first); the status cycles
    through the adapter's ``statuses`` percentiles."""

    WEEK = 604_800.0
    HOUR = 3_600.0

    def __init__(self, a: Adapter, n: int, recent: int = 0) -> None:
        connection = queue_connection()

        self.a, self.n, self.connection = a, n, connection
        self.recent = min(recent, n)
        self.vendor = connection.vendor
        self.qn = connection.ops.quote_name
        self.base = time.time() - 1.0
        self.params: list[Any] = []

    def series(self) -> tuple[str, str]:
        """(WITH-prefix, FROM-item) producing column g = 0 .. n-1."""
        last = self.n - 1
        if self.vendor == "postgresql":
            return "", f"generate_series(0, {last}) AS s(g)"
        if self.vendor == "mysql":
            return "", f"(SELECT seq AS g FROM seq_0_to_{last}) AS s"
        return (
            f"WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g < {last}) ",
            "s",
        )

    def p(self, value: Any) -> str:
        """A parameter (every literal % in the SQL is written %%: all three drivers, through
        Django's cursors, take pyformat parameters)."""
        self.params.append(value)
        return "%s"

    def time(self, offset: float) -> str:
        base, recent, older = self.base + offset, self.recent, self.n - self.recent
        seconds = f"({base!r} - g * {self.WEEK / max(older, 1)!r})"
        if recent:
            step = self.HOUR / recent
            spread = (self.WEEK - self.HOUR) / max(older, 1)
            seconds = (
                f"(CASE WHEN g < {recent} THEN {base!r} - g * {step!r} "
                f"ELSE {base - self.HOUR!r} - (g - {recent}) * {spread!r} END)"
            )
        if self.vendor == "postgresql":
            return f"to_timestamp({seconds})"
        if self.vendor == "mysql":
            return (
                f"TIMESTAMPADD(MICROSECOND, CAST({seconds} * 1000000 AS SIGNED), "
                "'1970-01-01 00:00:00.000000')"
            )
        return f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', {seconds}, 'unixepoch')"

    def status(self) -> str:
        whens = " ".join(
            f"WHEN g %% 100 < {bound} THEN {self.p(value)}" for bound, value in self.a.statuses
        )
        return f"CASE {whens} END"

    def is_status(self, statuses: tuple[str, ...]) -> str:
        return f"({self.status()}) IN ({', '.join(self.p(v) for v in statuses)})"

    def expr(self, spec: tuple[Any, ...], column: str) -> str:
        kind = spec[0]
        if kind == "status":
            return self.status()
        if kind == "cycle":
            whens = " ".join(f"WHEN {i} THEN {self.p(v)}" for i, v in enumerate(spec[1]))
            return f"CASE g %% {len(spec[1])} {whens} END"
        if kind == "time":
            return self.time(spec[1])
        if kind == "time_when":
            return f"CASE WHEN {self.is_status(spec[1])} THEN {self.time(spec[2])} END"
        if kind == "when":
            cond = self.is_status(spec[1])
            return f"CASE WHEN {cond} THEN {self.p(spec[2])} ELSE {self.p(spec[3])} END"
        if kind == "when_tpl":
            cond = self.is_status(spec[1])
            return f"CASE WHEN {cond} THEN {self.p(spec[2])} ELSE tpl.{column} END"
        if kind == "value":
            return self.p(spec[1])
        if kind == "uuid":
            if self.vendor == "postgresql":
                return "gen_random_uuid()"
            if self.vendor == "mysql":
                return "REPLACE(UUID(), '-', '')"
            return "lower(hex(randomblob(16)))"
        raise ValueError(spec)

    def insert_tasks(self, template_pk: Any, start_pk: int | None) -> None:
        model = self.a.model
        spec = self.a.finished_spec()
        cols, exprs = [], []
        for f in model._meta.concrete_fields:
            column = self.qn(f.column)
            cols.append(column)
            if f.primary_key and start_pk is not None:
                exprs.append(f"{start_pk} + g")
            elif f.name in spec:
                exprs.append(self.expr(spec[f.name], column))
            else:
                exprs.append(f"tpl.{column}")
        self.run(model, cols, exprs, template_pk)

    def run(self, model: Any, cols: list[str], exprs: list[str], template_pk: Any) -> None:
        table = self.qn(model._meta.db_table)
        pk = self.qn(model._meta.pk.column)
        with_sql, series = self.series()
        sql = (
            f"{with_sql}INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(exprs)} "
            f"FROM {series} CROSS JOIN (SELECT * FROM {table} WHERE {pk} = %s) AS tpl"
        )
        template = model._meta.pk.get_db_prep_value(template_pk, self.connection)
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [*self.params, template])
        self.params = []


def cmd_bigseed(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    """Add ``n`` finished tasks (and, for Firefly, their attempts), generated by the database
    from a row the system itself scheduled (and, for Firefly, ran); then (VACUUM) ANALYZE."""
    from django.core.management.color import no_style

    connection = queue_connection()
    from django.db.models import Count

    n = args["n"]
    began = time.perf_counter()
    model = a.model
    template_pk = a.schedule("noop")
    seeder = Seeder(a, n, recent=args.get("recent", 0))
    start_pk = None
    if _auto_pk(model._meta.pk):
        start_pk = model.objects.order_by("-pk").values_list("pk", flat=True).first() + 1
    tables = [model._meta.db_table]
    attempts = 0
    if SYSTEM == "firefly":
        from firefly_tasks.models import TaskAttempt
        from firefly_tasks.testing import run_pending_tasks

        run_pending_tasks()  # the template row completes, with its attempt
        seeder.insert_tasks(template_pk, start_pk)
        tpl_attempt = TaskAttempt.objects.filter(task_id=template_pk).values_list("pk", flat=True)
        task_col = {f.name: seeder.qn(f.column) for f in model._meta.concrete_fields}
        status = task_col["status"]
        from_task = {
            "task": f"t.{task_col['id']}",
            "number": "1",
            "worker": "NULL",
            "worker_name": seeder.p("bench-seed"),
            "started": f"t.{task_col['started']}",
            "finished": f"COALESCE(t.{task_col['completed']}, t.{task_col['failed']})",
            "outcome": f"t.{status}",
            "error": f"t.{task_col['error']}",
        }
        cols, exprs = [], []
        for f in TaskAttempt._meta.concrete_fields:
            if f.primary_key:
                continue
            column = seeder.qn(f.column)
            cols.append(column)
            exprs.append(from_task.get(f.name, f"tpl.{column}"))
        table = seeder.qn(TaskAttempt._meta.db_table)
        pk = seeder.qn(TaskAttempt._meta.pk.column)
        sql = (
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(exprs)} "
            f"FROM {seeder.qn(model._meta.db_table)} t CROSS JOIN "
            f"(SELECT * FROM {table} WHERE {pk} = %s) AS tpl "
            f"WHERE t.{task_col['id']} >= %s AND t.{status} <> %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*seeder.params, tpl_attempt.get(), start_pk, "cancelled"])
            attempts = cursor.rowcount
        tables.append(TaskAttempt._meta.db_table)
        rollup_rows = seed_rollups(start_pk)
        tables.append("firefly_tasks_taskrollup")
    else:
        seeder.insert_tasks(template_pk, start_pk)
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [model]):
            cursor.execute(sql)
    seeded = time.perf_counter() - began
    with connection.cursor() as cursor:
        for t in tables:
            if connection.vendor == "postgresql":
                cursor.execute(f"VACUUM ANALYZE {seeder.qn(t)}")
            elif connection.vendor == "mysql":
                cursor.execute(f"ANALYZE TABLE {seeder.qn(t)}")
                cursor.fetchall()
        if connection.vendor == "sqlite":
            cursor.execute("ANALYZE")
    return {
        "n": n,
        "attempts": attempts,
        "rollup_rows": rollup_rows if SYSTEM == "firefly" else 0,
        "seed_seconds": seeded,
        "total_seconds": time.perf_counter() - began,
        "by_status": dict(model.objects.values_list("status").annotate(c=Count("pk")).order_by()),
    }


def seed_rollups(start_pk: int, writers: int = 4) -> int:
    """Firefly's per-minute rollups for the seeded finished tasks, as ``writers`` consumer
    threads would have written them: each minute's completions and failures of each task
    split between the writers (run and wait times of 2 ms and 50 ms each)."""
    from django.db.models import Count, Q
    from django.db.models.functions import Coalesce, TruncMinute

    from firefly_tasks.models import TaskModel, TaskRollup
    from firefly_tasks.rollups import BOUNDS, RUN_BUCKETS, WAIT_BUCKETS

    finished = Q(status="completed") | Q(status="failed")
    groups = (
        TaskModel.objects.filter(finished, pk__gte=start_pk)
        .annotate(minute=TruncMinute(Coalesce("completed", "failed"), tzinfo=datetime.UTC))
        .values("minute", "queue", "func_name")
        .annotate(
            completed=Count("pk", filter=Q(status="completed")),
            failed=Count("pk", filter=Q(status="failed")),
        )
        .order_by()
    )
    run_bucket = RUN_BUCKETS[next(i for i, b in enumerate(BOUNDS) if b >= 0.002)]
    wait_bucket = WAIT_BUCKETS[next(i for i, b in enumerate(BOUNDS) if b >= 0.05)]
    rows = []
    for group in groups.iterator(chunk_size=10_000):
        for writer in range(writers):
            completed = group["completed"] // writers + (writer < group["completed"] % writers)
            failed = group["failed"] // writers + (writer < group["failed"] % writers)
            if not completed + failed:
                continue
            attempts = completed + failed
            rows.append(
                TaskRollup(
                    minute=group["minute"],
                    worker_id=1 + writer // 2,
                    slot=writer % 2,
                    queue=group["queue"],
                    func_name=group["func_name"],
                    completed=completed,
                    failed=failed,
                    run_seconds=0.002 * attempts,
                    wait_seconds=0.05 * attempts,
                    **{run_bucket: attempts, wait_bucket: attempts},
                )
            )
    TaskRollup.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


# Dashboard ------------------------------------------------------------------------------------


Page = tuple[str, str, dict[str, str], list[tuple[str, str]]]


def admin_pages(a: Adapter, request_factory: Any, user: Any) -> list[Page]:
    """Every GET page of the system's admin, discovered at run time: each changelist with
    every choice of every list filter (and all filters at once), a search, a deep page, the
    change page of a task, and every extra URL the ModelAdmins add (e.g. Firefly's
    dashboard), each with the changelist's filters too. Each entry: name, URL, headers, and
    the filter variants to time if the page answers GET."""
    from urllib.parse import parse_qsl, urlencode

    from django.contrib import admin
    from django.urls import URLPattern, reverse

    pages: list[Page] = []
    site = admin.site
    for model, model_admin in site._registry.items():
        if model._meta.app_label not in a.admin_apps:
            continue
        info = f"{site.name}:{model._meta.app_label}_{model._meta.model_name}"
        changelist = reverse(f"{info}_changelist")
        label = model._meta.model_name
        request = request_factory.get(changelist)
        request.user = user
        variants: list[tuple[str, str]] = []
        combined: dict[str, str] = {}
        try:
            cl = model_admin.get_changelist_instance(request)
            for spec in cl.filter_specs:
                last = None
                for choice in spec.choices(cl):
                    query = choice.get("query_string", "?")
                    if query in ("?", "") or any(query == q for _, q in variants):
                        continue
                    title = getattr(spec, "title", "filter")
                    variants.append((f"{title} = {choice['display']}", query))
                    last = query
                if last:
                    combined.update(parse_qsl(last.lstrip("?")))
        except Exception as exc:  # report it, and time the rest
            pages.append((f"{label} changelist filters: {exc!r}", "", {}, []))
        if len(combined) > 1:
            variants.append(("all filters at once", "?" + urlencode(combined)))
        # The deepest page: Firefly's task list pages by cursor (the oldest page), others by
        # number.
        keyset = SYSTEM == "firefly" and model._meta.model_name == "task"
        own = [("oldest page", "?after=0") if keyset else ("page 200", "?p=200")]
        if model_admin.search_fields:
            own.insert(0, ("search 'noop'", "?q=noop"))
        pages.append((f"{label} changelist", changelist, {}, [*variants, *own]))
        obj = model._default_manager.order_by("-pk").first()
        if obj is not None:
            pages.append(
                (f"{label} change page (newest)", reverse(f"{info}_change", args=[obj.pk]), {}, [])
            )
        standard = {"changelist", "add", "history", "delete", "change", "autocomplete"}
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        for pattern in model_admin.get_urls():
            if not isinstance(pattern, URLPattern) or not pattern.name:
                continue
            suffix = pattern.name.removeprefix(prefix)
            if suffix in standard or pattern.pattern.regex.groups:
                continue
            url = reverse(f"{site.name}:{pattern.name}")
            if suffix.endswith("pause"):  # Firefly's pause page: which queue, and why
                pages.append((f"{label} {suffix}", f"{url}?queue=default", {}, []))
                continue
            pages.append((f"{label} {suffix}", url, {}, variants))
    return pages


def htmx_regions(html: str) -> list[str]:
    """The ids of the live regions of a page: elements that reload themselves with hx-get,
    on a timer (``every``) or on the refresh event a page's script sends (Firefly's
    ``ff:refresh``)."""
    ids = []
    for tag in re.findall(r"<[a-zA-Z][^>]*\bhx-get=[^>]*>", html):
        m = re.search(r'\bid="([^"]+)"', tag)
        trigger = re.search(r'\bhx-trigger="([^"]*)"', tag)
        if m and trigger and ("every" in trigger.group(1) or "refresh" in trigger.group(1)):
            ids.append(m.group(1))
    return ids


def cmd_dashboard(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    """Time every admin page in-process with the test client, logged in as a superuser, with
    the number of queries each makes (CaptureQueriesContext)."""
    from django.contrib.auth import get_user_model

    connection = queue_connection()
    from django.test import Client, RequestFactory
    from django.test.utils import CaptureQueriesContext

    # No setup_test_environment(): its template instrumentation would add to every page.
    repeats = args.get("repeats", 3)
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first() or (
        user_model.objects.create_superuser("bench", "bench@example.com", "bench")
    )
    client = Client()
    client.force_login(user)
    pages = admin_pages(a, RequestFactory(), user)
    results = []
    i = 0
    while i < len(pages):
        name, url, headers, variants = pages[i]
        i += 1
        if not url:
            results.append({"page": name, "url": url, "error": "discovery failed"})
            continue
        response = client.get(url, headers=headers)  # warm-up: templates, caches
        if response.status_code == 405:
            continue  # POST only (e.g. pause/resume a queue): not a page
        times, queries = [], []
        for _ in range(repeats):
            with CaptureQueriesContext(connection) as ctx:
                t0 = time.perf_counter()
                response = client.get(url, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
            queries.append(len(ctx.captured_queries))
        status = response.status_code
        results.append(
            {
                "page": name,
                "url": url,
                "status": status,
                "ms": statistics.median(times),
                "queries": max(queries),
            }
        )
        if status != 200:
            continue
        extra: list[Page] = []
        if not headers:
            for region in htmx_regions(response.content.decode(errors="replace")):
                extra.append((f"{name} region #{region} (htmx)", url,
                              {"HX-Request": "true", "HX-Target": region}, []))  # fmt: skip
        extra += [(f"{name}: {title}", url + query, headers, []) for title, query in variants]
        pages[i:i] = extra
    return {"pages": results}


COMMANDS: dict[str, Callable[[Adapter, dict[str, Any]], dict[str, Any]]] = {
    "migrate": cmd_migrate,
    "reset": cmd_reset,
    "seed": cmd_seed,
    "ready": cmd_ready,
    "stats": cmd_stats,
    "max_pk": cmd_max_pk,
    "enqueue": cmd_enqueue,
    "latency": cmd_latency,
    "bigseed": cmd_bigseed,
    "dashboard": cmd_dashboard,
}


def main() -> None:
    command = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    django.setup()
    result = COMMANDS[command](ADAPTERS[SYSTEM](), args)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
