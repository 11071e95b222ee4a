"""The databases a benchmark creates: one fresh database a measurement, on PostgreSQL, SQLite,
MariaDB, or a prefix of keys on the Redis of the peers, dropped when the script exits; or a
copy of a cached one (the big table of ``bench/bigcache.py``)."""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

from bench.cleanup import on_exit

VENDORS = ("postgres", "sqlite", "mariadb")
# Not a database of ``--db``: where the peers that keep their queue in Redis run (Celery,
# RedisHuey), whenever one of them is among ``--systems``.
REDIS = "redis"

PG = {
    "host": os.environ.get("FIREFLY_BENCH_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("FIREFLY_BENCH_PG_PORT", "5432")),
    "user": os.environ.get("FIREFLY_BENCH_PG_USER", "postgres"),
    "password": os.environ.get("FIREFLY_BENCH_PG_PASSWORD", ""),
}
MYSQL = {
    "host": os.environ.get("FIREFLY_BENCH_MYSQL_HOST", "127.0.0.1"),
    "port": int(os.environ.get("FIREFLY_BENCH_MYSQL_PORT", "3306")),
    "user": os.environ.get("FIREFLY_BENCH_MYSQL_USER", "root"),
    "password": os.environ.get("FIREFLY_BENCH_MYSQL_PASSWORD", ""),
}
REDIS_URL = os.environ.get("FIREFLY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

_counter = 0


class Database:
    """A database created for one benchmark and dropped when the script exits."""

    def __init__(self, vendor: str, tag: str, template: str | None = None) -> None:
        """``template``: a copy of that database (PostgreSQL: a template database, copied
        file by file; SQLite: a file, checkpointed) instead of an empty one."""
        global _counter
        _counter += 1
        self.vendor = vendor
        self.name = f"ffbench_{tag}_{os.getpid()}_{_counter}"
        self._dir: str | None = None
        if template is not None and vendor not in ("postgres", "sqlite"):
            raise ValueError(f"no template databases on {vendor}")
        if vendor == "sqlite":
            self._dir = tempfile.mkdtemp(prefix="ffbench-")
            self.name = os.path.join(self._dir, f"{self.name}.sqlite3")
            if template is not None:
                shutil.copyfile(template, self.name)
        elif vendor == REDIS:
            self.name += "_r"  # no name is the start of another: keys are dropped by prefix
        elif vendor == "postgres":
            with self._server() as conn:
                if template is None:
                    conn.execute(f'CREATE DATABASE "{self.name}"')
                else:
                    # FILE_COPY (PostgreSQL 15+): the template's files copied after a
                    # checkpoint, instead of the default WAL_LOG, which writes the whole
                    # copy to the WAL block by block (slow for a table of ten million rows).
                    strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
                    conn.execute(f'CREATE DATABASE "{self.name}" TEMPLATE "{template}"{strategy}')
        elif vendor == "mariadb":
            with self._server() as conn:
                conn.cursor().execute(
                    f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 "
                    "COLLATE utf8mb4_unicode_ci"
                )
        else:
            raise ValueError(vendor)
        on_exit(self.drop)

    def __repr__(self) -> str:
        return f"<Database {self.vendor} {self.name}>"

    def _server(self) -> Any:
        return server(self.vendor)

    def connect(self) -> Any:
        """A DB-API connection to this database, in autocommit mode."""
        if self.vendor == REDIS:
            raise ValueError("Redis is no SQL database")
        if self.vendor == "postgres":
            import psycopg

            return psycopg.connect(dbname=self.name, autocommit=True, **PG)
        if self.vendor == "mariadb":
            import MySQLdb

            return MySQLdb.connect(
                host=MYSQL["host"], port=MYSQL["port"], user=MYSQL["user"],
                password=MYSQL["password"], database=self.name, autocommit=True,
                charset="utf8mb4",
            )  # fmt: skip
        import sqlite3

        conn = sqlite3.connect(self.name, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            cursor = conn.cursor()
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            conn.close()

    def analyze(self) -> None:
        """Refresh the planner's statistics, as autovacuum would on a live table: a table
        seeded a second ago must not be planned as if it were empty."""
        if self.vendor == REDIS:
            return
        if self.vendor == "postgres" or self.vendor == "sqlite":
            self.query("ANALYZE")
        else:
            tables = self.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                [self.name],
            )
            if tables:
                names = ", ".join(f"`{t}`" for (t,) in tables)
                self.query(f"ANALYZE TABLE {names}")

    def env(self) -> dict[str, str]:
        return {"FIREFLY_BENCH_DB": self.vendor, "FIREFLY_BENCH_DB_NAME": self.name}

    def drop(self) -> None:
        if self.vendor == "sqlite":
            if self._dir:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
            return
        if self.vendor == REDIS:
            cursor = "0"
            while True:  # Celery's keys start with the name, Huey's hold it after a prefix
                cursor, keys = redis_command("SCAN", cursor, "MATCH", f"*{self.name}*")
                if keys:
                    redis_command("DEL", *keys)
                if cursor == "0":
                    return
        with self._server() as conn:
            for name in (self.name, f"{self.name}_app"):  # the app database of "ffqueue" too
                if self.vendor == "postgres":
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                else:
                    conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")

    def durability(self) -> str:
        """How commits are made durable on this database, as the report should say."""
        if self.vendor == REDIS:
            version = next(
                line.split(":", 1)[1]
                for line in redis_command("INFO", "server").splitlines()
                if line.startswith("redis_version:")
            )
            aof = redis_command("CONFIG", "GET", "appendonly")
            fsync = redis_command("CONFIG", "GET", "appendfsync")
            return f"Redis {version}, appendonly={aof[1]}, appendfsync={fsync[1]}"
        if self.vendor == "postgres":
            (value,) = self.query("SHOW synchronous_commit")[0]
            (version,) = self.query("SHOW server_version")[0]
            return f"PostgreSQL {version.split()[0]}, synchronous_commit={value}"
        if self.vendor == "mariadb":
            rows = dict(
                self.query(
                    "SHOW VARIABLES WHERE Variable_name IN "
                    "('version', 'innodb_flush_log_at_trx_commit')"
                )
            )
            return (
                f"MariaDB {rows.get('version', '?').split('-')[0]}, "
                f"innodb_flush_log_at_trx_commit={rows.get('innodb_flush_log_at_trx_commit')}"
            )
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL"

    def pg_counters(self) -> dict[str, int]:
        """Transactions and row changes so far in this database (PostgreSQL only)."""
        if self.vendor != "postgres":
            return {}
        conn = self.connect()
        try:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted,"
                " tup_returned, tup_fetched FROM pg_stat_database WHERE datname = %s",
                [self.name],
            ).fetchone()
        finally:
            conn.close()
        keys = ("commits", "rollbacks", "inserted", "updated", "deleted", "returned", "fetched")
        return dict(zip(keys, row, strict=True)) if row else {}


@contextlib.contextmanager
def server(vendor: str) -> Any:
    """An autocommit connection to the PostgreSQL or MariaDB server, in no benchmark's
    database (to create, copy and drop them)."""
    if vendor == "postgres":
        import psycopg

        conn = psycopg.connect(dbname="postgres", autocommit=True, **PG)
    else:
        import MySQLdb

        conn = MySQLdb.connect(
            host=MYSQL["host"], port=MYSQL["port"], user=MYSQL["user"],
            password=MYSQL["password"], autocommit=True,
        )  # fmt: skip
    try:
        yield conn
    finally:
        conn.close()


def redis_command(*args: str) -> Any:
    """One command to the Redis of the peers, in RESP over a socket of its own: the
    orchestrators need no Redis client for the little they ask (drop keys, report the server)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(REDIS_URL)
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), 5) as sock:
        stream = sock.makefile("rwb")
        database = (url.path or "/0").lstrip("/") or "0"
        for command in (("SELECT", database), args):
            stream.write(f"*{len(command)}\r\n".encode())
            for arg in command:
                data = str(arg).encode()
                stream.write(b"$%d\r\n%s\r\n" % (len(data), data))
        stream.flush()
        _read_reply(stream)
        return _read_reply(stream)


def _read_reply(stream: Any) -> Any:
    line = stream.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:].decode()
    if kind == b"-":
        raise RuntimeError(f"Redis: {rest}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if rest == "-1" else stream.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        return [_read_reply(stream) for _ in range(int(rest))]
    return rest


def db_time(value: Any) -> float:
    """A timestamp read from any of the databases, as Unix seconds."""
    if value is None:
        return float("nan")
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.timestamp()
