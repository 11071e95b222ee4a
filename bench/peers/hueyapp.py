"""Huey (no Django) as a peer of the benchmarks: the ``huey`` instance its consumer runs
(``python -m huey.bin.huey_consumer bench.peers.hueyapp.huey``) and the benchmark workloads.

The storage follows the system (``FIREFLY_BENCH_PEER``'s ``storage``, see bench/systems.py):
``sqlite`` is ``SqliteHuey`` on the benchmark's SQLite file, ``sql`` the contrib ``SqlHuey``
through peewee (PostgreSQL, MariaDB), ``postgres`` Huey 3's own ``PostgresHuey`` (psycopg 3,
LISTEN/NOTIFY), ``redis`` ``RedisHuey``. Huey's defaults otherwise, except on SQLite:
``synchronous=NORMAL`` and a 30 s busy timeout, the configuration every system gets there
(Huey leaves SQLite's ``synchronous=FULL``).
"""

from __future__ import annotations

import time
from typing import Any

from huey import PostgresHuey, RedisHuey, SqliteHuey
from huey.storage import SqliteStorage

from bench.dbconf import MYSQL, NAME, PG, REDIS_URL, VENDOR
from bench.peer_agent import OPTIONS, write_stamp


class BenchSqliteStorage(SqliteStorage):
    """Huey's SQLite storage with the benchmarks' SQLite configuration."""

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn


class BenchSqliteHuey(SqliteHuey):
    storage_class = BenchSqliteStorage


def make_huey() -> Any:
    storage = OPTIONS.get("storage", "sqlite")
    if storage == "sqlite":
        return BenchSqliteHuey("bench", filename=NAME, timeout=30)
    if storage == "redis":
        return RedisHuey(NAME, url=REDIS_URL)
    if storage == "postgres":
        return PostgresHuey(
            "bench", dbname=NAME, host=PG["HOST"], port=PG["PORT"], user=PG["USER"],
            password=PG["PASSWORD"] or None,
        )  # fmt: skip
    from huey.contrib.sql_huey import SqlHuey
    from peewee import MySQLDatabase, PostgresqlDatabase

    if VENDOR == "postgres":
        database: Any = PostgresqlDatabase(
            NAME, host=PG["HOST"], port=int(PG["PORT"]), user=PG["USER"],
            password=PG["PASSWORD"] or None,
        )  # fmt: skip
    else:
        database = MySQLDatabase(
            NAME, host=MYSQL["HOST"], port=int(MYSQL["PORT"]), user=MYSQL["USER"],
            password=MYSQL["PASSWORD"], charset="utf8mb4",
        )  # fmt: skip
    return SqlHuey("bench", database=database)


huey = make_huey()


@huey.task()
def noop() -> None:
    pass


@huey.task()
def sleep10() -> None:
    time.sleep(0.01)


@huey.task()
def stamp(key: str) -> None:
    write_stamp(key)
