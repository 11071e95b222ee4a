"""The agent's ``enqueue`` command: one ``schedule()`` against a raw single-row ``INSERT`` of the
same row, and ``schedule_many()`` against raw multi-row ``INSERT`` and ``COPY``."""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from bench.agent_adapters import Adapter, auto_pk, queue_connection


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
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and auto_pk(f))]
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
    uuid_pk = not auto_pk(pk_field)
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
