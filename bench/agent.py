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
from collections.abc import Callable, Iterator
from typing import Any

import django

SYSTEM = os.environ.get("FIREFLY_BENCH_SYSTEM", "firefly")


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

    def finished_row(self, i: int, now: datetime.datetime) -> dict[str, Any]:
        """Field values that make the template row the i-th of a million finished tasks."""
        raise NotImplementedError


def spread(i: int, now: datetime.datetime, n: int = 1_000_000) -> datetime.datetime:
    """The i-th of n moments spread evenly over the last 7 days, newest first."""
    return now - datetime.timedelta(seconds=(i * 604_800) // n + 1)


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

    def finished_row(self, i: int, now: datetime.datetime) -> dict[str, Any]:
        names = [self.task(w).name for w in ("noop", "sleep10", "stamp")]
        created = spread(i, now)
        status = "completed" if i % 100 < 97 else ("failed" if i % 100 < 99 else "cancelled")
        row = {
            "func_name": names[i % 3],
            "status": status,
            "created": created,
            "not_before": created,
            "started": None if status == "cancelled" else created,
            "completed": None,
            "failed": None,
            "cancelled": None,
            "attempt": 0 if status == "cancelled" else 1,
            "worker": None,
        }
        row[status] = created + datetime.timedelta(milliseconds=5)
        if status == "failed":
            row["error"] = "RuntimeError: seeded failure"
            row["returned_data"] = None
            row["returned_preview"] = ""
        return row


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

    def finished_row(self, i: int, now: datetime.datetime) -> dict[str, Any]:
        created = spread(i, now)
        status = "completed" if i % 100 < 98 else "failed"
        return {
            "status": status,
            "created": created,
            "completed": created if status == "completed" else None,
            "failed": created if status == "failed" else None,
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
        return {
            str(r.pk): (r.return_value if r.status == "SUCCESSFUL" else None) for r in rows
        }

    def finished_row(self, i: int, now: datetime.datetime) -> dict[str, Any]:
        created = spread(i, now)
        status = "SUCCESSFUL" if i % 100 < 98 else "FAILED"
        return {
            "id": uuid.uuid4(),
            "status": status,
            "enqueued_at": created,
            "started_at": created,
            "finished_at": created,
        }


ADAPTERS = {"firefly": FireflyAdapter, "ff04": Ff04Adapter, "dtdb": DtdbAdapter}


# Commands -------------------------------------------------------------------------------------


def cmd_migrate(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return {}


def queue_models(a: Adapter) -> list[Any]:
    from django.apps import apps

    return [m for label in a.apps for m in apps.get_app_config(label).get_models()]


def cmd_reset(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    """Empty the queue's tables (tasks, attempts, workers...)."""
    from django.core.management.color import no_style
    from django.db import connection, transaction

    tables = [m._meta.db_table for m in queue_models(a)]
    # One transaction, as `manage.py flush` does: foreign keys are checked at its end.
    with transaction.atomic(), connection.cursor() as cursor:
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
    by_status = dict(
        a.model.objects.values_list("status").annotate(Count("pk")).order_by()
    )
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
    Django's, whose client-side binding would make the "raw" side slow in Python."""
    from django.db import connection

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
    if connection.vendor == "postgresql":
        import psycopg

        db = connection.settings_dict
        raw = psycopg.connect(
            dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"] or None,
            host=db["HOST"], port=db["PORT"], autocommit=True,
        )  # fmt: skip
        prepped = [_plain(v) for v in prepped]
    else:
        connection.ensure_connection()
        raw = connection.connection
    return sql, prepped, raw


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
    from django.db import connection

    rounds, per_round = args.get("rounds", 5), args.get("per_round", 200)
    chunk = args.get("chunk", 1000)
    sql, params, raw_conn = template_insert(a)
    pk_field = a.model._meta.pk
    uuid_pk = not _auto_pk(pk_field)
    single: list[float] = []
    raw: list[float] = []
    for _ in range(rounds):
        for _ in range(per_round):
            t0 = time.perf_counter()
            a.schedule("noop")
            single.append(time.perf_counter() - t0)
        cursor = raw_conn.cursor()
        for _ in range(per_round):
            if uuid_pk:
                params = [_new_uuid(connection, params[0]), *params[1:]]
            t0 = time.perf_counter()
            cursor.execute(sql, params)
            raw.append(time.perf_counter() - t0)
        cursor.close()
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        a.schedule("noop")
    result: dict[str, Any] = {
        "queries_per_call": len(ctx.captured_queries),
        "single_ms": statistics.median(single) * 1000,
        "raw_single_ms": statistics.median(raw) * 1000,
        "single_per_s": 1 / statistics.median(single),
        "raw_single_per_s": 1 / statistics.median(raw),
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
    delays = [
        (started[k] - committed[k]) * 1000 for k in committed if started.get(k) is not None
    ]
    return {"delays_ms": delays, "missing": samples - len(delays)}


# A million finished tasks ---------------------------------------------------------------------


def cmd_bigseed(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    """Add ``n`` finished tasks (and, for Firefly, their attempts) with COPY on PostgreSQL and
    multi-row INSERTs elsewhere, cloned from a real scheduled and completed row."""
    from django.db import connection

    n = args["n"]
    began = time.perf_counter()
    model = a.model
    template_pk = a.schedule("noop")
    attempt_model = None
    if SYSTEM == "firefly":
        from firefly_tasks.models import TaskAttempt
        from firefly_tasks.testing import run_pending_tasks

        run_pending_tasks()
        attempt_model = TaskAttempt
    now = datetime.datetime.now(datetime.UTC)
    template = model.objects.get(pk=template_pk)
    fields = list(model._meta.concrete_fields)
    pk_auto = _auto_pk(model._meta.pk)
    start_pk = (model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    if not pk_auto:
        start_pk = 0
    base = {f.attname: f.get_db_prep_save(getattr(template, f.attname), connection)
            for f in fields}  # fmt: skip
    by_name = {f.name: f for f in fields}

    def rows() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            values = dict(base)
            if pk_auto:
                values[model._meta.pk.attname] = start_pk + i
            for name, value in a.finished_row(i, now).items():
                f = by_name[name]
                values[f.attname] = f.get_db_prep_save(value, connection)
            yield tuple(values[f.attname] for f in fields)

    _bulk_insert(model._meta.db_table, [f.column for f in fields], rows())
    attempts = 0
    if attempt_model is not None:
        template_attempt = attempt_model.objects.filter(task_id=template_pk).first()
        a_fields = [f for f in attempt_model._meta.concrete_fields if not f.primary_key]
        a_base = {f.attname: f.get_db_prep_save(getattr(template_attempt, f.attname), connection)
                  for f in a_fields}  # fmt: skip
        a_by = {f.name: f for f in a_fields}

        def attempt_rows() -> Iterator[tuple[Any, ...]]:
            for i in range(n):
                row = a.finished_row(i, now)
                if row["status"] == "cancelled":
                    continue
                values = dict(a_base)
                over = {
                    "task": start_pk + i,
                    "number": 1,
                    "worker": None,
                    "worker_name": "bench-seed",
                    "started": row["started"],
                    "finished": row[row["status"]],
                    "outcome": row["status"],
                    "error": row.get("error", ""),
                }
                for name, value in over.items():
                    if name in a_by:
                        f = a_by[name]
                        values[f.attname] = (
                            value if name == "task" else f.get_db_prep_save(value, connection)
                        )
                yield tuple(values[f.attname] for f in a_fields)

        attempts = _bulk_insert(
            attempt_model._meta.db_table, [f.column for f in a_fields], attempt_rows()
        )
    if pk_auto:
        from django.core.management.color import no_style

        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [model]):
                cursor.execute(sql)
    seeded = time.perf_counter() - began
    with connection.cursor() as cursor:
        tables = [model._meta.db_table] + (
            [attempt_model._meta.db_table] if attempt_model else []
        )
        if connection.vendor == "postgresql":
            for t in tables:
                cursor.execute(f'VACUUM ANALYZE "{t}"')
        elif connection.vendor == "mysql":
            for t in tables:
                cursor.execute(f"ANALYZE TABLE `{t}`")
                cursor.fetchall()
        else:
            cursor.execute("ANALYZE")
    return {
        "n": n,
        "attempts": attempts,
        "seed_seconds": seeded,
        "total_seconds": time.perf_counter() - began,
    }


def _bulk_insert(table: str, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> int:
    from django.db import connection

    qn = connection.ops.quote_name
    cols = ", ".join(qn(c) for c in columns)
    count = 0
    connection.ensure_connection()
    raw = connection.connection
    if connection.vendor == "postgresql":
        with raw.cursor() as cursor, cursor.copy(f"COPY {qn(table)} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count
    mark = "?" if connection.vendor == "sqlite" else "%s"
    one = "(" + ", ".join([mark] * len(columns)) + ")"
    chunk = 500 if connection.vendor == "sqlite" else 2000  # SQLite: 32,766 variables
    chunk = max(1, min(chunk, 32_000 // len(columns)))
    cursor = raw.cursor()
    batch: list[Any] = []
    n_batch = 0

    def flush() -> None:
        if n_batch:
            cursor.execute(
                f"INSERT INTO {qn(table)} ({cols}) VALUES {', '.join([one] * n_batch)}", batch
            )

    if connection.vendor == "sqlite":
        cursor.execute("BEGIN")
    for row in rows:
        batch.extend(row)
        n_batch += 1
        count += 1
        if n_batch == chunk:
            flush()
            batch, n_batch = [], 0
    flush()
    if connection.vendor == "sqlite":
        cursor.execute("COMMIT")
    cursor.close()
    return count


# Dashboard ------------------------------------------------------------------------------------


def admin_pages(a: Adapter, request_factory: Any, user: Any) -> list[tuple[str, str, dict[str, str]]]:
    """Every GET page of the system's admin, discovered at run time: each changelist with
    every choice of every list filter, a search, the change page of a task, and every extra
    URL the ModelAdmins add (e.g. Firefly's dashboard, with each of its live regions and
    each filter)."""
    from django.contrib import admin
    from django.urls import URLPattern, reverse

    pages: list[tuple[str, str, dict[str, str]]] = []
    site = admin.site
    for model, model_admin in site._registry.items():
        if model._meta.app_label not in a.admin_apps:
            continue
        info = f"{site.name}:{model._meta.app_label}_{model._meta.model_name}"
        changelist = reverse(f"{info}_changelist")
        label = model._meta.model_name
        pages.append((f"{label} changelist", changelist, {}))
        request = request_factory.get(changelist)
        request.user = user
        filter_queries = []
        try:
            cl = model_admin.get_changelist_instance(request)
            for spec in cl.filter_specs:
                for choice in spec.choices(cl):
                    query = choice.get("query_string", "?")
                    if query not in ("?", "") and query not in filter_queries:
                        filter_queries.append(query)
                        title = getattr(spec, "title", "filter")
                        pages.append(
                            (f"{label} changelist: {title} = {choice['display']}",
                             changelist + query, {})
                        )  # fmt: skip
        except Exception as exc:  # report, keep timing the rest
            pages.append((f"{label} changelist filters: {exc!r}", "", {}))
        if model_admin.search_fields:
            pages.append((f"{label} changelist: search 'noop'", changelist + "?q=noop", {}))
        pages.append((f"{label} changelist: page 200", changelist + "?p=200", {}))
        obj = model._default_manager.order_by("-pk").first()
        if obj is not None:
            pages.append(
                (f"{label} change page (newest)", reverse(f"{info}_change", args=[obj.pk]), {})
            )
        standard = {"changelist", "add", "history", "delete", "change", "autocomplete"}
        for pattern in model_admin.get_urls():
            if not isinstance(pattern, URLPattern) or not pattern.name:
                continue
            suffix = pattern.name.removeprefix(f"{model._meta.app_label}_{model._meta.model_name}_")
            if suffix in standard or pattern.pattern.regex.groups:
                continue
            url = reverse(f"{site.name}:{pattern.name}")
            pages.append((f"{label} {suffix}", url, {}))
            for query in filter_queries:
                pages.append((f"{label} {suffix} {query}", url + query, {}))
    return pages


def htmx_regions(html: str) -> list[str]:
    """The ids of the live regions of a page (elements that reload themselves with hx-get)."""
    ids = []
    for tag in re.findall(r"<[a-zA-Z][^>]*\bhx-get=[^>]*>", html):
        m = re.search(r'\bid="([^"]+)"', tag)
        trigger = re.search(r'\bhx-trigger="([^"]*)"', tag)
        if m and trigger and "every" in trigger.group(1):
            ids.append(m.group(1))
    return ids


def cmd_dashboard(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    """Time every admin page in-process with the test client, logged in as a superuser, with
    the number of queries each makes (CaptureQueriesContext)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
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
    seen_regions: set[tuple[str, str]] = set()
    i = 0
    while i < len(pages):
        name, url, headers = pages[i]
        i += 1
        if not url:
            results.append({"page": name, "url": url, "error": "discovery failed"})
            continue
        client.get(url, headers=headers)  # warm-up: template compilation, caches
        times, queries, status = [], [], None
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
        if status == 200 and not headers and "?" not in url:
            for region in htmx_regions(response.content.decode(errors="replace")):
                if (url, region) not in seen_regions:
                    seen_regions.add((url, region))
                    pages.insert(
                        i,
                        (f"{name} region #{region} (htmx)", url,
                         {"HX-Request": "true", "HX-Target": region}),
                    )  # fmt: skip
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
