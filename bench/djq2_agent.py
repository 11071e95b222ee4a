"""The django-q2 side of the benchmarks: ``python -m bench.djq2_agent COMMAND 'JSON-ARGS'``.

Runs in django-q2's own virtualenv with ``bench.peers.djq2.settings`` (its ORM broker on the
benchmark database). Its consumer is its own ``manage.py qcluster``, which never exits by
itself and keeps only the last ``save_limit`` results (250 by default): ``watch`` follows the
drain by the broker's own count of the tasks still queued (a task's ``OrmQ`` row is deleted
once its result is saved and it is acknowledged).
"""

from __future__ import annotations

import time
from typing import Any

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_q.brokers import get_broker  # noqa: E402
from django_q.models import OrmQ, Task  # noqa: E402
from django_q.tasks import async_task  # noqa: E402

from bench import peer_agent  # noqa: E402

TASKS = "bench.peers.djq2.tasks."


class _Collector:
    """A broker that keeps the signed packages ``async_task`` hands it: the rows it would have
    written one by one, to write in bulk (django-q2 has no bulk API)."""

    def __init__(self, list_key: str) -> None:
        self.list_key = list_key
        self.packages: list[str] = []

    def enqueue(self, package: str) -> int:
        self.packages.append(package)
        return len(self.packages)


def cmd_migrate(args: dict[str, Any]) -> dict[str, Any]:
    call_command("migrate", verbosity=0, interactive=False)
    return {}


def cmd_reset(args: dict[str, Any]) -> dict[str, Any]:
    OrmQ.objects.all().delete()
    Task.objects.all().delete()
    return {}


def cmd_seed(args: dict[str, Any]) -> dict[str, Any]:
    if args.get("reset"):
        cmd_reset({})
    n, chunk = args["n"], args.get("chunk", 5000)
    began = time.perf_counter()
    collector = _Collector(get_broker().list_key)
    for _ in range(n):
        async_task(TASKS + args["workload"], broker=collector)
    now = timezone.now()
    rows = [OrmQ(key=collector.list_key, payload=p, lock=now) for p in collector.packages]
    OrmQ.objects.bulk_create(rows, batch_size=chunk)
    return {"seconds": time.perf_counter() - began, "n": n}


def cmd_watch(args: dict[str, Any]) -> dict[str, Any]:
    key = get_broker().list_key
    return peer_agent.watch(lambda: OrmQ.objects.filter(key=key).count(), args)


def cmd_ready(args: dict[str, Any]) -> dict[str, Any]:
    return {"ready": OrmQ.objects.count()}


def cmd_enqueue(args: dict[str, Any]) -> dict[str, Any]:
    """``async_task()`` in autocommit against a raw INSERT of the ``OrmQ`` row it wrote, on a
    DB-API connection of its own made as Django makes its (on PostgreSQL a plain psycopg
    connection that never prepares, as Django's): the broker closes Django's connection before
    each write unless ``CONN_MAX_AGE`` keeps it. django-q2 has no bulk API."""
    async_task(TASKS + "noop")
    row = OrmQ.objects.order_by("-pk").values_list("key", "payload", "lock").first()
    assert row is not None
    key, payload, lock = row
    field = OrmQ._meta.get_field("lock")
    params = [key, payload, field.get_db_prep_save(lock, connection)]
    qn = connection.ops.quote_name
    mark = "?" if connection.vendor == "sqlite" else "%s"
    sql = (
        f"INSERT INTO {qn(OrmQ._meta.db_table)} ({qn('key')}, {qn('payload')}, {qn('lock')}) "
        f"VALUES ({mark}, {mark}, {mark})"
    )
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        import psycopg

        db = connection.settings_dict
        raw = psycopg.connect(
            dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"] or None,
            host=db["HOST"], port=db["PORT"], autocommit=True, prepare_threshold=None,
        )  # fmt: skip
    else:
        raw = connection.get_new_connection(connection.get_connection_params())
        if connection.vendor == "sqlite":
            raw.isolation_level = None
        else:
            raw.autocommit(True)
    cursor = raw.cursor()
    result = peer_agent.enqueue_rounds(
        lambda: async_task(TASKS + "noop"), lambda: cursor.execute(sql, params), args
    )
    cursor.close()
    return result


def cmd_latency(args: dict[str, Any]) -> dict[str, Any]:
    return peer_agent.latency(lambda key: async_task(TASKS + "stamp", key), args)


if __name__ == "__main__":
    peer_agent.main(
        {
            "migrate": cmd_migrate,
            "reset": cmd_reset,
            "seed": cmd_seed,
            "watch": cmd_watch,
            "ready": cmd_ready,
            "enqueue": cmd_enqueue,
            "latency": cmd_latency,
        }
    )
