"""The Procrastinate side of the benchmarks: ``python -m bench.procrastinate_agent COMMAND
'JSON-ARGS'``.

Runs in Procrastinate's own virtualenv with ``bench.peers.procr.settings`` (its Django contrib,
PostgreSQL). Its worker is Procrastinate's own ``manage.py procrastinate worker``; completion
times come from Procrastinate's own ``procrastinate_events`` rows (``succeeded``, stamped by
the database when the worker finishes the job).
"""

from __future__ import annotations

import time
from typing import Any

import django

django.setup()

import psycopg  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from bench import peer_agent  # noqa: E402
from bench.dbconf import NAME, PG  # noqa: E402
from bench.peers.procr import tasks  # noqa: E402


def cmd_migrate(args: dict[str, Any]) -> dict[str, Any]:
    call_command("migrate", verbosity=0, interactive=False)
    return {}


def cmd_reset(args: dict[str, Any]) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE procrastinate_events, procrastinate_jobs CASCADE")
    return {}


def cmd_seed(args: dict[str, Any]) -> dict[str, Any]:
    """``n`` jobs through ``batch_defer``, Procrastinate's bulk API, in calls of ``chunk``."""
    if args.get("reset"):
        cmd_reset({})
    task = getattr(tasks, args["workload"])
    n, chunk = args["n"], args.get("chunk", 5000)
    began = time.perf_counter()
    for start in range(0, n, chunk):
        task.batch_defer(*[{}] * min(chunk, n - start))
    return {"seconds": time.perf_counter() - began, "n": n}


def cmd_stats(args: dict[str, Any]) -> dict[str, Any]:
    """Jobs that succeeded since ``since`` and the span of their ``succeeded`` events."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), min(at), max(at) FROM procrastinate_events "
            "WHERE type = 'succeeded' AND at >= to_timestamp(%s)",
            [args.get("since", 0)],
        )
        done, first, last = cursor.fetchone()
    return {
        "done": done,
        "first": first.timestamp() if first else None,
        "last": last.timestamp() if last else None,
    }


def cmd_enqueue(args: dict[str, Any]) -> dict[str, Any]:
    """``defer()`` (Django's connection, autocommit) against a raw INSERT of the row it wrote
    (a plain psycopg connection that never prepares, as Django's; the same triggers fire);
    then ``batch_defer()`` in calls of ``chunk``."""
    tasks.noop.defer()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT queue_name, task_name, priority, lock, queueing_lock, args, scheduled_at "
            "FROM procrastinate_jobs ORDER BY id DESC LIMIT 1"
        )
        row = list(cursor.fetchone())
    row[5] = Jsonb(row[5])
    raw_conn = psycopg.connect(
        dbname=NAME, user=PG["USER"], password=PG["PASSWORD"], host=PG["HOST"],
        port=PG["PORT"], autocommit=True, prepare_threshold=None,
    )  # fmt: skip
    sql = (
        "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, lock, queueing_lock, "
        "args, scheduled_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    )
    cursor = raw_conn.cursor()
    result = peer_agent.enqueue_rounds(tasks.noop.defer, lambda: cursor.execute(sql, row), args)
    raw_conn.close()
    result["many_per_s"] = peer_agent.bulk_rate(
        lambda chunk: tasks.noop.batch_defer(*[{}] * chunk), args
    )
    return result


def cmd_latency(args: dict[str, Any]) -> dict[str, Any]:
    return peer_agent.latency(lambda key: tasks.stamp.defer(key=key), args)


if __name__ == "__main__":
    peer_agent.main(
        {
            "migrate": cmd_migrate,
            "reset": cmd_reset,
            "seed": cmd_seed,
            "stats": cmd_stats,
            "enqueue": cmd_enqueue,
            "latency": cmd_latency,
        }
    )
