"""The ceilings: hand-written SQL loops on a lean table shaped like a task table.

``python -m bench.raw COMMAND 'JSON-ARGS'`` with the database in the environment (as for
the agents). No Django, no framework: a DB-API connection in autocommit and the fewest
statements that claim and finish a task safely (``FOR UPDATE SKIP LOCKED`` where the database
has it), so each figure shows how far a system is from what the database itself allows.

Modes of ``work``:
  single       claim 1 task (its own commit), run it, mark it completed (its own commit)
  batch        claim 100 (one commit), run them, mark the 100 completed (one commit)
  onestatement PostgreSQL: one statement marks the previous 100 completed and claims the next
"""

from __future__ import annotations

import datetime
import json
import signal
import sys
import time
from typing import Any

from bench import dbconf

TABLE = "bench_raw_task"
ORDER = "priority DESC, not_before, id"
READY = "status = 'created' AND queue = 'default' AND not_before <= {now}"

DDL = {
    "postgres": [
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            id bigserial PRIMARY KEY, queue varchar(100) NOT NULL, status varchar(16) NOT NULL,
            priority smallint NOT NULL DEFAULT 0, created timestamptz NOT NULL,
            not_before timestamptz NOT NULL, started timestamptz, completed timestamptz,
            params text NOT NULL, returned text)""",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_ready ON {TABLE} (queue, priority DESC, "
        "not_before, id) WHERE status = 'created'",
    ],
    "sqlite": [
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            id integer PRIMARY KEY AUTOINCREMENT, queue varchar(100) NOT NULL,
            status varchar(16) NOT NULL, priority smallint NOT NULL DEFAULT 0,
            created datetime NOT NULL, not_before datetime NOT NULL, started datetime,
            completed datetime, params text NOT NULL, returned text)""",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_ready ON {TABLE} (queue, priority DESC, "
        "not_before, id) WHERE status = 'created'",
    ],
    "mariadb": [
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            id bigint AUTO_INCREMENT PRIMARY KEY, queue varchar(100) NOT NULL,
            status varchar(16) NOT NULL, priority smallint NOT NULL DEFAULT 0,
            created datetime(6) NOT NULL, not_before datetime(6) NOT NULL,
            started datetime(6) NULL, completed datetime(6) NULL, params longtext NOT NULL,
            returned longtext NULL,
            INDEX {TABLE}_ready (status, queue, priority DESC, not_before, id))""",
    ],
}


def connect() -> Any:
    vendor = dbconf.VENDOR
    if vendor == "postgres":
        import psycopg

        pg = dbconf.PG
        return psycopg.connect(
            host=pg["HOST"], port=pg["PORT"], user=pg["USER"], password=pg["PASSWORD"],
            dbname=dbconf.NAME, autocommit=True,
        )  # fmt: skip
    if vendor == "mariadb":
        import MySQLdb

        my = dbconf.MYSQL
        return MySQLdb.connect(
            host=my["HOST"], port=int(my["PORT"]), user=my["USER"], password=my["PASSWORD"],
            database=dbconf.NAME, autocommit=True, charset="utf8mb4",
        )  # fmt: skip
    import sqlite3

    conn = sqlite3.connect(dbconf.NAME, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def now() -> Any:
    moment = datetime.datetime.now(datetime.UTC)
    if dbconf.VENDOR == "sqlite":
        return moment.replace(tzinfo=None).isoformat(" ")
    if dbconf.VENDOR == "mariadb":
        return moment.replace(tzinfo=None)
    return moment


def mark() -> str:
    return "?" if dbconf.VENDOR == "sqlite" else "%s"


def cmd_setup(args: dict[str, Any]) -> dict[str, Any]:
    conn = connect()
    cursor = conn.cursor()
    for sql in DDL[dbconf.VENDOR]:
        cursor.execute(sql)
    conn.close()
    return {}


def cmd_reset(args: dict[str, Any]) -> dict[str, Any]:
    conn = connect()
    conn.cursor().execute(f"DELETE FROM {TABLE}")
    conn.close()
    return {}


def cmd_seed(args: dict[str, Any]) -> dict[str, Any]:
    if args.get("reset"):
        cmd_reset({})
    conn = connect()
    cursor = conn.cursor()
    n, chunk = args["n"], 500
    m = mark()
    one = f"('default', 'created', 0, {m}, {m}, {m})"
    params_json = json.dumps([[], {}])
    began = time.perf_counter()
    left = n
    while left > 0:
        size = min(chunk, left)
        stamp = now()
        cursor.execute(
            f"INSERT INTO {TABLE} (queue, status, priority, created, not_before, params) "
            f"VALUES {', '.join([one] * size)}",
            [stamp, stamp, params_json] * size,
        )
        left -= size
    conn.close()
    return {"seconds": time.perf_counter() - began, "n": n}


def cmd_ready(args: dict[str, Any]) -> dict[str, Any]:
    conn = connect()
    cursor = conn.cursor()
    cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE status = 'created'")
    (ready,) = cursor.fetchone()
    conn.close()
    return {"ready": ready}


def noop() -> None:
    pass


def run(rows: list[tuple[Any, str]]) -> list[Any]:
    ids = []
    for pk, params in rows:
        args, kwargs = json.loads(params)
        noop(*args, **kwargs)
        ids.append(pk)
    return ids


class Claimer:
    def __init__(self, conn: Any, limit: int) -> None:
        self.conn = conn
        self.cursor = conn.cursor()
        self.limit = limit
        m = mark()
        self.m = m
        vendor = dbconf.VENDOR
        if vendor == "postgres":
            self.claim_sql = (
                f"WITH c AS MATERIALIZED (SELECT id FROM {TABLE} WHERE {READY.format(now=m)}"
                f" ORDER BY {ORDER} LIMIT {m} FOR UPDATE SKIP LOCKED)"
                f" UPDATE {TABLE} t SET status = 'running', started = {m} FROM c"
                f" WHERE t.id = c.id RETURNING t.id, t.params"
            )
        elif vendor == "sqlite":
            self.claim_sql = (
                f"UPDATE {TABLE} SET status = 'running', started = {m} WHERE id IN ("
                f"SELECT id FROM {TABLE} WHERE {READY.format(now=m)} ORDER BY {ORDER}"
                f" LIMIT {m}) RETURNING id, params"
            )
        else:
            self.claim_sql = (
                f"SELECT id, params FROM {TABLE} WHERE {READY.format(now=m)}"
                f" ORDER BY {ORDER} LIMIT {m} FOR UPDATE SKIP LOCKED"
            )

    def claim(self) -> list[tuple[Any, str]]:
        stamp = now()
        if dbconf.VENDOR == "postgres":
            self.cursor.execute(self.claim_sql, [stamp, self.limit, stamp])
            return list(self.cursor.fetchall())
        if dbconf.VENDOR == "sqlite":
            self.cursor.execute(self.claim_sql, [stamp, stamp, self.limit])
            return list(self.cursor.fetchall())
        self.cursor.execute("START TRANSACTION")
        self.cursor.execute(self.claim_sql, [stamp, self.limit])
        rows = list(self.cursor.fetchall())
        if rows:
            marks = ", ".join([self.m] * len(rows))
            self.cursor.execute(
                f"UPDATE {TABLE} SET status = 'running', started = {self.m} WHERE id IN ({marks})",
                [stamp, *(r[0] for r in rows)],
            )
        self.conn.commit()
        return rows

    def ack(self, ids: list[Any]) -> None:
        marks = ", ".join([self.m] * len(ids))
        self.cursor.execute(
            f"UPDATE {TABLE} SET status = 'completed', completed = {self.m}, returned = 'null'"
            f" WHERE id IN ({marks})",
            [now(), *ids],
        )

    def ack_and_claim(self, ids: list[Any]) -> list[tuple[Any, str]]:
        m = self.m
        stamp = now()
        self.cursor.execute(
            f"WITH done AS (UPDATE {TABLE} SET status = 'completed', completed = {m},"
            f" returned = 'null' WHERE id = ANY({m})),"
            f" c AS MATERIALIZED (SELECT id FROM {TABLE} WHERE {READY.format(now=m)}"
            f" ORDER BY {ORDER} LIMIT {m} FOR UPDATE SKIP LOCKED)"
            f" UPDATE {TABLE} t SET status = 'running', started = {m} FROM c"
            f" WHERE t.id = c.id RETURNING t.id, t.params",
            [stamp, ids, stamp, self.limit, stamp],
        )
        return list(self.cursor.fetchall())


def cmd_work(args: dict[str, Any]) -> dict[str, Any]:
    """Drain the table in one mode until it is empty, ``cap`` seconds pass, or SIGTERM."""
    mode, cap = args["mode"], args.get("cap", 60)
    stop = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    conn = connect()
    claimer = Claimer(conn, 1 if mode == "single" else args.get("batch", 100))
    acks: list[tuple[float, int]] = []
    deadline = time.monotonic() + cap
    pending: list[Any] = []
    while not stop and time.monotonic() < deadline:
        if mode == "onestatement":
            rows = claimer.ack_and_claim(pending)
            if pending:
                acks.append((time.time(), len(pending)))
            pending = run(rows)
            if not rows:
                break
            continue
        rows = claimer.claim()
        if not rows:
            break
        claimer.ack(run(rows))
        acks.append((time.time(), len(rows)))
    if pending:
        claimer.ack(pending)
        acks.append((time.time(), len(pending)))
    conn.close()
    done = sum(n for _, n in acks)
    return {
        "done": done,
        "first": acks[0][0] if acks else None,
        "last": acks[-1][0] if acks else None,
        "first_count": acks[0][1] if acks else 0,
    }


COMMANDS = {
    "setup": cmd_setup,
    "migrate": cmd_setup,
    "reset": cmd_reset,
    "seed": cmd_seed,
    "ready": cmd_ready,
    "work": cmd_work,
}


def main() -> None:
    command = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    print(json.dumps(COMMANDS[command](args)))


if __name__ == "__main__":
    main()
