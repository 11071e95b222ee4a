"""The agent's commands on the queue's tables: create them (``migrate``), empty them (``reset``),
fill them (``seed``), and count what is ready, done, and the last key (``ready``, ``stats``,
``max_pk``)."""

from __future__ import annotations

import datetime
import time
from typing import Any

from bench.agent_adapters import Adapter, queue_connection


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
