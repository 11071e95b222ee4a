"""A private PostgreSQL cluster pinned to a core of its own, the consumers to another: how
``bench/scaling.py --pin`` measures the database, not two processes fighting over two cores.

The shared server (127.0.0.1:5432) is left alone: neither its configuration nor its CPU affinity
is touched. ``private_postgres()`` runs ``initdb`` into a temporary directory under /tmp (as the
``postgres`` user when run as root), starts ``taskset -c DB_CORE postgres -D DIR/data -p PORT
-k DIR -c listen_addresses=127.0.0.1 -c synchronous_commit=on``, with the shared server's
settings that bear on the speed of a commit copied (``COPIED``), then points the benchmark at it
for the duration of the ``with`` block: ``bench.databases.PG`` (the orchestrator's connections)
and ``FIREFLY_BENCH_PG_HOST``/``PORT``/``USER``/``PASSWORD`` (every process started, through
``System.env``), every process started through ``taskset -c CONSUMER_CORE``
(``bench.processes.pin``), the orchestrator itself on that core too. On the way out, normally,
by an exception, Ctrl-C or SIGTERM, all of that is undone, the server stopped (fast shutdown)
and its directory removed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench import databases, processes
from bench.cleanup import on_exit
from bench.log import log

# The shared server's settings that bear on a commit's speed, given to the private cluster too.
COPIED = ("shared_buffers", "fsync", "full_page_writes", "wal_level", "wal_buffers",
          "max_wal_size", "min_wal_size", "autovacuum", "max_connections")  # fmt: skip
ENV = {"host": "FIREFLY_BENCH_PG_HOST", "port": "FIREFLY_BENCH_PG_PORT",
       "user": "FIREFLY_BENCH_PG_USER", "password": "FIREFLY_BENCH_PG_PASSWORD"}  # fmt: skip


class Unpinnable(Exception):
    """No private pinned cluster here: no ``taskset``, no PostgreSQL binaries, one core, or the
    cluster would not start."""


@dataclass
class Cluster:
    """A private PostgreSQL server started by ``private_postgres``."""

    directory: str
    port: int
    postmaster: int  # its pid: its CPU time, and its children's, is the server's
    db_core: int
    consumer_core: int
    settings: str  # what it was started with, for the report

    def describe(self) -> str:
        return (
            f"a private PostgreSQL cluster on 127.0.0.1:{self.port} pinned to core "
            f"{self.db_core} (`taskset -c {self.db_core}`), every consumer and agent on core "
            f"{self.consumer_core}; {self.settings}"
        )


def binaries() -> str:
    """The directory of the newest PostgreSQL server's binaries (``FIREFLY_BENCH_PG_BIN``)."""
    found = os.environ.get("FIREFLY_BENCH_PG_BIN")
    if not found:
        candidates = glob.glob("/usr/lib/postgresql/*/bin/postgres")
        candidates.sort(key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0)
        found = os.path.dirname(candidates[-1]) if candidates else ""
    if not found or not os.path.exists(os.path.join(found, "initdb")):
        raise Unpinnable("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    return found


def check() -> None:
    """Raise ``Unpinnable`` unless this machine can pin: ``taskset``, two cores, binaries."""
    if shutil.which("taskset") is None:
        raise Unpinnable("no taskset")
    if len(os.sched_getaffinity(0)) < 2:
        raise Unpinnable("fewer than two cores")
    binaries()


def free_port(start: int = 55433) -> int:
    for port in range(start, start + 100):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise Unpinnable("no free port from 55433")


def copied_settings() -> list[str]:
    """``name=value`` of ``COPIED`` on the shared server (read only), for the private one."""
    import psycopg

    try:
        conn = psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5,
                               **databases.PG)  # fmt: skip
    except psycopg.Error as exc:
        log(f"the shared server's settings are not copied: {exc}")
        return []
    with conn:
        return [f"{name}={conn.execute('SELECT current_setting(%s)', [name]).fetchone()[0]}"
                for name in COPIED]  # fmt: skip


def _owner() -> dict[str, Any]:
    """Run the server as ``postgres`` when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise Unpinnable("running as root and there is no postgres user") from exc
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


@contextlib.contextmanager
def private_postgres(db_core: int = 1, consumer_core: int = 0) -> Iterator[Cluster]:
    """A private cluster on ``db_core``, the benchmark pointed at it, everything else on
    ``consumer_core``, for the ``with`` block; all undone afterwards, whatever happens."""
    check()
    if {db_core, consumer_core} - os.sched_getaffinity(0):
        raise Unpinnable(f"cores {db_core} and {consumer_core} are not both ours")
    bindir = binaries()
    owner = _owner()
    directory = tempfile.mkdtemp(prefix="ffbench-pg-", dir="/tmp")
    server: subprocess.Popen[Any] | None = None
    saved_pg = dict(databases.PG)
    saved_env = {key: os.environ.get(key) for key in ENV.values()}
    saved_affinity = os.sched_getaffinity(0)
    undone = False

    def undo() -> None:  # once: at the end of the block, or at exit if that never came
        nonlocal undone
        if undone:
            return
        undone = True
        processes.pin(None)
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, saved_affinity)
        databases.PG.clear()
        databases.PG.update(saved_pg)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if server is not None:
            stop(server)
        shutil.rmtree(directory, ignore_errors=True)

    on_exit(undo)  # SIGTERM, or an exit before the ``finally`` below
    try:
        if owner:
            shutil.chown(directory, "postgres", "postgres")
        data = os.path.join(directory, "data")
        init = subprocess.run(
            [os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"],
            cwd=directory, capture_output=True, text=True, **owner,
        )  # fmt: skip
        if init.returncode:
            raise Unpinnable(f"initdb failed: {init.stderr[-1000:]}")
        port = free_port()
        settings = ["listen_addresses=127.0.0.1", "synchronous_commit=on", *copied_settings()]
        cmd = ["taskset", "-c", str(db_core), os.path.join(bindir, "postgres"), "-D", data,
               "-p", str(port), "-k", directory]  # fmt: skip
        for setting in settings:
            cmd += ["-c", setting]
        log_file = open(os.path.join(directory, "server.log"), "ab")  # noqa: SIM115
        server = subprocess.Popen(cmd, cwd=directory, stdout=log_file, stderr=log_file,
                                  start_new_session=True, **owner)  # fmt: skip
        log_file.close()
        _wait_ready(server, port, directory)
        databases.PG.update({"host": "127.0.0.1", "port": port, "user": "postgres",
                             "password": ""})  # fmt: skip
        for key, env in ENV.items():
            os.environ[env] = str(databases.PG[key])
        processes.pin(str(consumer_core))
        os.sched_setaffinity(0, {consumer_core})
        cluster = Cluster(directory, port, server.pid, db_core, consumer_core,
                          ", ".join(f"`{s}`" for s in settings))  # fmt: skip
        log(f"pinned: {cluster.describe()}")
        yield cluster
    finally:
        undo()


def _wait_ready(server: subprocess.Popen[Any], port: int, directory: str) -> None:
    """Until the server accepts connections (30 s at most)."""
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            text = ""
            with contextlib.suppress(OSError), open(os.path.join(directory, "server.log")) as f:
                text = f.read()[-1500:]
            raise Unpinnable(f"the private server exited {server.returncode}: {text}")
        try:
            psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                            connect_timeout=2).close()  # fmt: skip
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise Unpinnable("the private server did not start in 30 s") from None
            time.sleep(0.2)


def stop(server: subprocess.Popen[Any]) -> None:
    """Fast shutdown (SIGINT: its sessions ended, a checkpoint), then SIGQUIT, then SIGKILL."""
    for sig, grace in ((signal.SIGINT, 20), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)):
        if server.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(sig)
        try:
            server.wait(grace)
        except subprocess.TimeoutExpired:
            continue
