"""What every benchmark script shares: databases, systems, processes, statistics, tables.

The scripts in ``bench/`` are orchestrators. They never import Django: they create a fresh
database, then drive each system through processes of its own Python — ``bench/agent.py``
(Django side: migrate, seed, schedule, time admin pages), the system's real consumer
command, ``bench/pgq_agent.py`` (pgqueuer), ``bench/procrastinate_agent.py``,
``bench/djq2_agent.py``, ``bench/huey_agent.py``, ``bench/celery_agent.py`` (the other peers)
or ``bench/raw.py`` (the raw SQL ceilings) — and read the answers those processes print as
JSON.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
VENVS = Path(os.environ.get("FIREFLY_BENCH_VENVS", BENCH / ".venvs"))
RESULTS = BENCH / "results"
VENDORS = ("postgres", "sqlite", "mariadb")
# Not a database of ``--db``: where the peers that keep their queue in Redis run (Celery,
# RedisHuey), whenever one of them is among ``--systems``.
REDIS = "redis"
DJANGO_VERSION = "5.2.19"  # the peers run on the Django that Firefly's checkout runs on

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


def log(*parts: Any) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# Clean-up -----------------------------------------------------------------------------------

_cleanups: list[Callable[[], None]] = []


def on_exit(function: Callable[[], None]) -> None:
    _cleanups.append(function)


def _run_cleanups() -> None:
    while _cleanups:
        function = _cleanups.pop()
        with contextlib.suppress(Exception):
            function()


def _on_signal(signum: int, frame: Any) -> None:
    _run_cleanups()
    sys.exit(128 + signum)


atexit.register(_run_cleanups)
signal.signal(signal.SIGTERM, _on_signal)


# Databases ----------------------------------------------------------------------------------

_counter = 0


class Database:
    """A database created for one benchmark and dropped when the script exits."""

    def __init__(self, vendor: str, tag: str) -> None:
        global _counter
        _counter += 1
        self.vendor = vendor
        self.name = f"ffbench_{tag}_{os.getpid()}_{_counter}"
        self._dir: str | None = None
        if vendor == "sqlite":
            self._dir = tempfile.mkdtemp(prefix="ffbench-")
            self.name = os.path.join(self._dir, f"{self.name}.sqlite3")
        elif vendor == REDIS:
            self.name += "_r"  # no name is the start of another: keys are dropped by prefix
        elif vendor == "postgres":
            with self._server() as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
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

    @contextlib.contextmanager
    def _server(self) -> Any:
        if self.vendor == "postgres":
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


# Virtualenvs of the peers -------------------------------------------------------------------

PEER_REQUIREMENTS = {
    "ff04": [
        "django-firefly-tasks==0.4.0",
        f"Django=={DJANGO_VERSION}",
        "psycopg[binary]==3.3.9",
        "mysqlclient==2.3.1",
    ],
    "dtdb": [
        "django-tasks-db[compat]==0.13.0",
        "django-tasks==0.12.0",
        f"Django=={DJANGO_VERSION}",
        "psycopg[binary]==3.3.9",
        "mysqlclient==2.3.1",
    ],
    "pgq": ["pgqueuer[asyncpg]==1.6.0"],
    "procrastinate": [
        "procrastinate[django]==3.10.0",
        f"Django=={DJANGO_VERSION}",
        "psycopg[binary]==3.3.9",
        "psycopg-pool==3.3.3",
    ],
    "djq2": [
        "django-q2==1.11.1",
        f"Django=={DJANGO_VERSION}",
        "psycopg[binary]==3.3.9",
        "mysqlclient==2.3.1",
    ],
    "huey": [
        "huey==3.5.4",
        "peewee==4.5.3",
        "redis==8.2.0",
        "psycopg2-binary==2.9.13",  # peewee's PostgreSQL driver
        "psycopg[binary]==3.3.9",  # PostgresHuey's
        "mysqlclient==2.3.1",
    ],
    "celery": ["celery[redis]==5.7.0", "kombu==5.7.0", "redis==8.2.0"],
}


class Unavailable(Exception):
    """A system cannot run here (its virtualenv could not be built, or wrong database)."""


def venv_python(name: str) -> str:
    """The Python of a peer's virtualenv, created on first use (a minute, once)."""
    requirements = PEER_REQUIREMENTS[name]
    root = VENVS / name
    python = root / "bin" / "python"
    marker = root / "bench-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return str(python)
    log(f"building virtualenv {root} ({', '.join(requirements)})")
    shutil.rmtree(root, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *requirements],
            capture_output=True,
            text=True,
        )
        if pip.returncode:
            raise Unavailable(f"pip could not install {requirements}:\n{pip.stderr[-2000:]}")
    except (OSError, subprocess.CalledProcessError) as exc:
        raise Unavailable(f"could not build the {name} virtualenv: {exc}") from exc
    marker.write_text(wanted)
    return str(python)


# Systems ------------------------------------------------------------------------------------


# The agent module of each kind of system (bench/agent.py for "django").
AGENTS = {
    "pgq": "bench.pgq_agent",
    "raw": "bench.raw",
    "procrastinate": "bench.procrastinate_agent",
    "djq2": "bench.djq2_agent",
    "huey": "bench.huey_agent",
    "celery": "bench.celery_agent",
}
# How a drain learns when tasks completed: from the system's own table ("table": the agent's
# ``stats``), from what its consumer prints ("consumer": pgqueuer, raw SQL), or by watching the
# queue empty ("watch": the agent's ``watch``, for consumers that record no completion time).
COMPLETION = {"pgq": "consumer", "raw": "consumer", "djq2": "watch", "huey": "watch",
              "celery": "watch"}  # fmt: skip


@dataclass
class System:
    key: str
    label: str
    kind: str  # "django", "pgq", "raw", or one of the other peers' (see AGENTS)
    vendors: tuple[str, ...] = VENDORS
    venv: str | None = None
    settings: str | None = None
    burst: bool = True  # the consumer exits by itself once the queue is empty
    concurrency: bool = False  # the consumer has a --concurrency of its own
    admin: bool = False
    pool: str = ""  # Firefly's --pool, when not its default
    queue_db: bool = False  # Firefly with FIREFLY_DATABASE on a database of its own
    # The peer's own settings (FIREFLY_BENCH_PEER, read by bench/peer_agent.py) and the
    # arguments added to its consumer's command: what its tuned variant sets.
    options: dict[str, Any] = field(default_factory=dict)
    worker_args: tuple[str, ...] = ()
    # A variant tuned on the consumer's side only: the system whose enqueue is the very same.
    enqueues_as: str = ""

    @property
    def python(self) -> str:
        return venv_python(self.venv) if self.venv else sys.executable

    @property
    def agent_module(self) -> str:
        return AGENTS.get(self.kind, "bench.agent")

    @property
    def completion(self) -> str:
        return COMPLETION.get(self.kind, "table")

    def env(self, db: Database, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(db.env())
        env["PYTHONPATH"] = str(REPO)
        env["PYTHONUNBUFFERED"] = "1"
        env["FIREFLY_BENCH_SYSTEM"] = "firefly" if self.pool or self.queue_db else self.key
        if self.queue_db:
            env["FIREFLY_BENCH_QUEUE_DB"] = "1"
        if self.settings:
            env["DJANGO_SETTINGS_MODULE"] = self.settings
        if self.options:
            env["FIREFLY_BENCH_PEER"] = json.dumps(self.options)
        env.update(extra)
        return env

    def consumer_cmd(
        self, workload: str, concurrency: int | None = None, burst: bool = True
    ) -> list[str]:
        """The system's own consumer command (Django systems)."""
        if self.key == "firefly" or self.pool or self.queue_db:
            cmd = [self.python, "-m", "django", "consume_tasks"]
            if self.pool:
                cmd += ["--pool", self.pool]
            if concurrency:
                cmd += ["--concurrency", str(concurrency)]
            return cmd + (["--burst"] if burst else [])
        if self.key == "ff04":
            return [self.python, "-m", "django", "consume_tasks"]
        if self.key == "dtdb":
            cmd = [self.python, "-m", "django", "db_worker", "--no-startup-delay"]
            return cmd + (["--batch"] if burst else [])
        if self.kind == "procrastinate":
            cmd = [self.python, "-m", "django", "procrastinate", "worker", "--concurrency",
                   str(concurrency or self.options.get("concurrency", 1))]  # fmt: skip
            return cmd + (["--one-shot"] if burst else [])
        if self.kind == "djq2":  # no burst mode: the drain watches the queue empty
            return [self.python, "-m", "django", "qcluster"]
        if self.kind == "huey":
            return [self.python, "-m", "huey.bin.huey_consumer", "bench.peers.hueyapp.huey",
                    *self.worker_args]  # fmt: skip
        if self.kind == "celery":
            return [self.python, "-m", "celery", "-A", "bench.peers.celeryapp", "worker",
                    "--loglevel", "WARNING", *self.worker_args]  # fmt: skip
        raise ValueError(self.key)


FIREFLY = System("firefly", "Firefly", "django", settings="bench.settings", concurrency=True,
                 admin=True)  # fmt: skip
FFPROC = System("ffproc", "Firefly, --pool process", "django", settings="bench.settings",
                concurrency=True, pool="process")  # fmt: skip
FF04 = System("ff04", "django-firefly-tasks 0.4.0", "django", venv="ff04",
              settings="bench.peers.ff04.settings", burst=False, admin=True)  # fmt: skip
DTDB = System("dtdb", "django-tasks-db 0.13.0", "django", venv="dtdb",
              settings="bench.peers.dtdb.settings", admin=True)  # fmt: skip
PGQ = System("pgq", "pgqueuer 1.6.0 (asyncpg, batch 100)", "pgq", vendors=("postgres",),
             venv="pgq", concurrency=True)  # fmt: skip
RAW1 = System("raw1", "raw SQL, 1 task per claim + ack", "raw")
RAW100 = System("raw100", "raw SQL, claim 100 / ack 100", "raw")
RAWSTMT = System("rawstmt", "raw SQL, ack 100 + claim 100 in 1 statement", "raw",
                 vendors=("postgres",))  # fmt: skip
FFQUEUE = System("ffqueue", "Firefly, queue on a database of its own", "django",
                 settings="bench.settings", concurrency=True, queue_db=True)  # fmt: skip
PROCRASTINATE = System("procrastinate", "Procrastinate 3.10.0 (Django contrib), -c 1",
                       "procrastinate", vendors=("postgres",), venv="procrastinate",
                       settings="bench.peers.procr.settings", concurrency=True)  # fmt: skip
PROCRASTINATE10 = System("procrastinate10", "Procrastinate 3.10.0, --concurrency 10",
                         "procrastinate", vendors=("postgres",), venv="procrastinate",
                         settings="bench.peers.procr.settings", concurrency=True,
                         options={"concurrency": 10}, enqueues_as="procrastinate")  # fmt: skip
DJQ2 = System("djq2", "django-q2 1.11.1 (ORM broker)", "djq2", venv="djq2",
              settings="bench.peers.djq2.settings", burst=False)  # fmt: skip
# django-q2's docs: bulk "can improve performance", poll is the ORM broker's idle sleep,
# save_limit -1 stores no successful result; queue_limit holds a whole bulk in memory; no
# INFO line for every task. And Django's persistent connections (CONN_MAX_AGE = None): its
# ORM broker otherwise connects anew for every poll, dequeue and enqueue.
DJQ2_TUNED_CLUSTER = {"workers": 2, "bulk": 100, "queue_limit": 200, "poll": 0.05,
                      "save_limit": -1, "log_level": "WARNING"}  # fmt: skip
DJQ2TUNED = System("djq2tuned", "django-q2 1.11.1, tuned", "djq2", venv="djq2",
                   settings="bench.peers.djq2.settings", burst=False,
                   options={"q_cluster": DJQ2_TUNED_CLUSTER, "conn_max_age": None})  # fmt: skip
HUEY = System("huey", "Huey 3.5.4 (SqliteHuey)", "huey", vendors=("sqlite",), venv="huey",
              burst=False, options={"storage": "sqlite"})  # fmt: skip
HUEYSQL = System("hueysql", "Huey 3.5.4 (SqlHuey, peewee 4.5.3)", "huey",
                 vendors=("postgres", "mariadb"), venv="huey", burst=False,
                 options={"storage": "sql"})  # fmt: skip
HUEYPG = System("hueypg", "Huey 3.5.4 (PostgresHuey, LISTEN/NOTIFY)", "huey",
                vendors=("postgres",), venv="huey", burst=False,
                options={"storage": "postgres"})  # fmt: skip
HUEYREDIS = System("hueyredis", "Huey 3.5.4 (RedisHuey)", "huey", vendors=(REDIS,),
                   venv="huey", burst=False, options={"storage": "redis"})  # fmt: skip
# Huey's docs: more workers (threads, its default kind) for throughput; --no-periodic spares
# the scheduler's periodic-task check; --quiet, no INFO lines for every task.
HUEY_TUNED_ARGS = ("--workers", "4", "--no-periodic", "--quiet")
HUEY4 = System("huey4", "Huey 3.5.4 (SqliteHuey), tuned", "huey", vendors=("sqlite",),
               venv="huey", burst=False, options={"storage": "sqlite"},
               worker_args=HUEY_TUNED_ARGS, enqueues_as="huey")  # fmt: skip
HUEYREDIS4 = System("hueyredis4", "Huey 3.5.4 (RedisHuey), tuned", "huey", vendors=(REDIS,),
                    venv="huey", burst=False, options={"storage": "redis"},
                    worker_args=HUEY_TUNED_ARGS, enqueues_as="hueyredis")  # fmt: skip
CELERY = System("celery", "Celery 5.7.0 (Redis), prefork -c 1", "celery", vendors=(REDIS,),
                venv="celery", burst=False,
                worker_args=("--pool", "prefork", "--concurrency", "1"))  # fmt: skip
# Celery's "Optimizing" guide: a high prefetch multiplier for many short tasks; and the
# worker's --without-gossip/-mingle/-heartbeat: a lone worker has nobody to exchange them with.
CELERYTHREADS = System("celerythreads", "Celery 5.7.0 (Redis), --pool threads, tuned", "celery",
                       vendors=(REDIS,), venv="celery", burst=False,
                       worker_args=("--pool", "threads", "--concurrency", "1",
                                    "--prefetch-multiplier", "64", "--without-gossip",
                                    "--without-mingle", "--without-heartbeat"),
                       enqueues_as="celery")  # fmt: skip
PEERS = [PROCRASTINATE, PROCRASTINATE10, DJQ2, DJQ2TUNED, HUEY, HUEY4, HUEYSQL, HUEYPG,
         HUEYREDIS, HUEYREDIS4, CELERY, CELERYTHREADS]  # fmt: skip
SYSTEMS = [FIREFLY, FFPROC, FFQUEUE, FF04, DTDB, PGQ, *PEERS, RAW1, RAW100, RAWSTMT]
RAW_MODES = {"raw1": "single", "raw100": "batch", "rawstmt": "onestatement"}


# Processes ----------------------------------------------------------------------------------

_procs: set[subprocess.Popen[Any]] = set()


def _kill_all() -> None:
    for proc in list(_procs):
        stop(proc, grace=2)


on_exit(_kill_all)


def start(cmd: list[str], env: dict[str, str], name: str = "proc") -> subprocess.Popen[Any]:
    """Start a process of a benchmark. Its stderr goes to bench/results/logs/NAME.log, its
    stdout to a file of its own (never a pipe nobody reads: a chatty consumer would block)."""
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    err = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    err.write(f"\n$ {' '.join(cmd)}\n".encode())
    err.flush()
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True)
    proc._bench_files = (out, err)  # type: ignore[attr-defined]
    _procs.add(proc)
    return proc


def stop(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM (graceful stop for every consumer here), then SIGKILL after ``grace``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            log(f"process {proc.pid} ignored SIGTERM for {grace}s: killed")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    # Its children too (a qcluster's or Celery's pool): it leads a session of its own.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    _procs.discard(proc)


def discard_output(proc: subprocess.Popen[Any]) -> None:
    for handle in proc._bench_files:  # type: ignore[attr-defined]
        handle.close()


def output_json(proc: subprocess.Popen[Any]) -> dict[str, Any]:
    """The JSON object a finished process printed last on stdout."""
    out, err = proc._bench_files  # type: ignore[attr-defined]
    out.seek(0)
    text = out.read().decode(errors="replace")
    out.close()
    err.close()
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(
        f"no JSON from process (exit {proc.returncode}): {' '.join(proc.args[:5])}...; "
        f"see bench/results/logs"
    )


def run_json(cmd: list[str], env: dict[str, str], name: str, timeout: float = 1800) -> Any:
    proc = start(cmd, env, name)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise
    finally:
        _procs.discard(proc)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:4])}... exited {proc.returncode}; see bench/results/logs/{name}.log"
        )
    return output_json(proc)


def agent(
    system: System, db: Database, command: str, *, env: dict[str, str] | None = None, **args: Any
) -> Any:
    """Run one command of the system's agent (``bench/agent.py`` for Django systems, else
    ``AGENTS``), with ``env`` added to its environment; return the JSON it printed."""
    cmd = [system.python, "-m", system.agent_module, command, json.dumps(args)]
    return run_json(cmd, system.env(db, **(env or {})), f"{system.key}-{db.vendor}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its living descendants (a qcluster's workers, Celery's
    pool, a process pool)."""
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):  # it exited meanwhile
            total += cpu_seconds(current)
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo += [int(child) for child in handle.read().split()]
    return total


# Statistics and tables ----------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    values = [v for v in values if v == v]  # drop NaN
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if value != value:
        return "–"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (also readable as plain text)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def verdict(value: float | None, target: float, higher_is_better: bool = True) -> str:
    if value is None or value != value:
        return "–"
    ok = value >= target if higher_is_better else value <= target
    return "meets" if ok else "MISSES"


# Command line and reports -------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small smoke run: 1 run, small sizes")
    p.add_argument("--runs", type=int, default=None, help="runs per measurement (default 3)")
    p.add_argument(
        "--db",
        default=",".join(VENDORS),
        help="comma-separated databases among postgres,sqlite,mariadb (default: all)",
    )
    p.add_argument(
        "--systems",
        default=",".join(s.key for s in SYSTEMS if not s.pool),
        help="comma-separated systems among " + ",".join(s.key for s in SYSTEMS),
    )
    return p


@dataclass
class Options:
    quick: bool
    runs: int
    vendors: list[str]
    systems: list[System]
    extra: argparse.Namespace = field(default_factory=argparse.Namespace)


def options(args: argparse.Namespace) -> Options:
    vendors = [v for v in args.db.split(",") if v]
    for vendor in vendors:
        if vendor not in VENDORS:
            raise SystemExit(f"unknown database {vendor!r}")
    keys = [k for k in args.systems.split(",") if k]
    by_key = {s.key: s for s in SYSTEMS}
    for key in keys:
        if key not in by_key:
            raise SystemExit(f"unknown system {key!r}")
    runs = args.runs or (1 if args.quick else 3)
    return Options(args.quick, runs, vendors, [by_key[k] for k in keys], args)


def stores(opts: Options) -> list[str]:
    """Where the peer-comparison scripts run: the databases of ``--db``, and Redis when a
    system that keeps its queue there is among ``--systems``."""
    redis = any(REDIS in s.vendors for s in opts.systems)
    return [*opts.vendors, *([REDIS] if redis else [])]


def machine() -> str:
    cores = os.cpu_count()
    load = os.getloadavg()[0]
    return f"{platform.node()}: {cores} cores, Python {platform.python_version()}, load {load:.1f}"


def save(name: str, report: dict[str, Any]) -> Path:
    """Keep a script's figures as JSON (bench/results/NAME.json) for run_all and the README."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "name": name,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **report,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=1, default=str))
    md = RESULTS / f"{name}.md"
    md.write_text(report.get("markdown", ""))
    return path


def header(title: str, opts: Options) -> str:
    return (
        f"## {title}\n\n{datetime.date.today().isoformat()}, {machine()}; "
        f"runs: {opts.runs}{' (quick)' if opts.quick else ''}\n"
    )


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
