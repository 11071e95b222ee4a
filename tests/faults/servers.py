"""Database servers of the fault suite's own: PostgreSQL and MariaDB, each in a temporary
directory on a free port, so they can be stopped, crashed and restarted without touching the
servers other tests share.

Each server process leads its own process group: ``kill`` ends it and every backend it forked
at once, as a crash of the machine would, and :meth:`DatabaseServer.destroy` leaves nothing
behind whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

# PostgreSQL refuses to run as root: as root, its processes run as this user.
UNPRIVILEGED = 65534  # nobody / nogroup
# Bounds of the waits below: each is about ten times what it takes on an idle machine.
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies awaiting their reaper do not)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")".
        fields = stat.rpartition(")")[2].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


class DatabaseServer:
    """One server: ``start()``, ``stop(how)``, ``start()`` again, ``destroy()`` at the end."""

    # FIREFLY_TEST_DB of the consumers that use it.
    test_db: str
    # How it can be stopped: "fast" (clean shutdown), "immediate", "kill" (SIGKILL of every
    # process of the server).
    stops: tuple[str, ...]

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"firefly-faults-{self.test_db}-"))
        self.root.chmod(0o755)  # the unprivileged server user reaches its data inside
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.initialize()

    # Vendor specifics ----------------------------------------------------------------------

    def initialize(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def signal_for(self, how: str) -> int:
        raise NotImplementedError

    def connect(self) -> Any:
        """A raw driver connection to the server (not through Django)."""
        raise NotImplementedError

    def create_database(self, name: str) -> None:
        raise NotImplementedError

    def django_settings(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def environment(self, name: str) -> dict[str, str]:
        """What tests/settings.py needs to point a consumer process at database ``name``."""
        raise NotImplementedError

    def after_kill(self) -> None:
        """Tidy what a killed server leaves that its next start would refuse."""

    # Lifecycle -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> float:
        """Start the server and wait until it accepts connections; return how long it took."""
        assert not self.running, "already running"
        began = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, backends included
                **self.run_as(),
            )
        deadline = began + READY_TIMEOUT
        while True:
            try:
                self.connect().close()
                return time.monotonic() - began
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.destroy_processes()
                    raise RuntimeError(
                        f"{self.test_db} server did not start:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    def stop(self, how: str) -> float:
        """Stop the server as ``how`` says and wait until every process of it is gone;
        return how long the stop took."""
        assert how in self.stops, f"{self.test_db} has no {how!r} stop"
        assert self.process is not None
        began = time.monotonic()
        if how == "kill":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        else:
            self.process.send_signal(self.signal_for(how))
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.destroy_processes()
            raise AssertionError(f"{self.test_db} {how} stop took over {STOP_TIMEOUT}s") from None
        self._wait_group_gone()
        if how == "kill":
            self.after_kill()
        return time.monotonic() - began

    def destroy(self) -> None:
        """Kill every process of the server and delete its files."""
        self.destroy_processes()
        shutil.rmtree(self.root, ignore_errors=True)

    def destroy_processes(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_TIMEOUT)
        self._wait_group_gone()

    def _wait_group_gone(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STOP_TIMEOUT
        while _group_alive(self.process.pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.test_db} processes outlived their server")
            time.sleep(0.02)

    def run_as(self) -> dict[str, Any]:
        return {}

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class PostgresServer(DatabaseServer):
    test_db = "postgres"
    stops = ("fast", "immediate", "kill")
    bin = Path("/usr/local/bin")
    user = "postgres"

    def run_as(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        return {"user": UNPRIVILEGED, "group": UNPRIVILEGED, "extra_groups": []}

    def initialize(self) -> None:
        self.data.mkdir()
        self.sockets = self.root / "sockets"
        self.sockets.mkdir()
        if os.geteuid() == 0:
            for path in (self.data, self.sockets):
                os.chown(path, UNPRIVILEGED, UNPRIVILEGED)
        with self.log.open("ab") as log:
            subprocess.run(
                [
                    str(self.bin / "initdb"),
                    f"--pgdata={self.data}",
                    f"--username={self.user}",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                    "--no-sync",  # a kill loses no written page: only power loss would
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=120,
                **self.run_as(),
            )

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.sockets),
            "shared_buffers": "16MB",
            "max_connections": "100",
            "max_wal_size": "64MB",
            # Crash safety is the point: keep fsync and synchronous commits as they come.
            "fsync": "on",
            # After a crash, flush the data directory with one syncfs(), not a file at a time.
            "recovery_init_sync_method": "syncfs",
        }
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        return [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), *options]

    def signal_for(self, how: str) -> int:
        return {"fast": signal.SIGINT, "immediate": signal.SIGQUIT}[how]

    def after_kill(self) -> None:
        # A reboot would clear it; here the dead postmaster's PID may belong to another
        # process by now, which postgres cannot tell from a live postmaster.
        (self.data / "postmaster.pid").unlink(missing_ok=True)

    def connect(self, dbname: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname=dbname, connect_timeout=2
        )

    def create_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.autocommit = True
            conn.execute(f'CREATE DATABASE "{name}"')

    def django_settings(self, name: str) -> dict[str, Any]:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": self.user,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
        }

    def environment(self, name: str) -> dict[str, str]:
        return {
            "FIREFLY_TEST_DB": "postgres",
            "FIREFLY_TEST_DB_NAME": name,
            "FIREFLY_TEST_PG_USER": self.user,
            "FIREFLY_TEST_PG_HOST": "127.0.0.1",
            "FIREFLY_TEST_PG_PORT": str(self.port),
        }


class MariadbServer(DatabaseServer):
    test_db = "mariadb"
    # MariaDB has no "immediate" shutdown: a crash is SIGKILL.
    stops = ("fast", "kill")
    user = "root"

    def initialize(self) -> None:
        with self.log.open("ab") as log:
            subprocess.run(
                [
                    "/usr/bin/mariadb-install-db",
                    "--no-defaults",
                    f"--datadir={self.data}",
                    "--auth-root-authentication-method=normal",
                    f"--user={self.user}",
                    "--skip-test-db",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=120,
            )

    def command(self) -> list[str]:
        return [
            "/usr/sbin/mariadbd",
            "--no-defaults",
            f"--datadir={self.data}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.root / 'mariadb.sock'}",
            f"--pid-file={self.root / 'mariadb.pid'}",
            f"--user={self.user}",
            "--innodb-buffer-pool-size=32M",
            "--performance-schema=OFF",
            "--skip-log-bin",
            "--max-connections=200",
            # Crash safety is the point: every commit is flushed, as by default.
            "--innodb-flush-log-at-trx-commit=1",
        ]

    def signal_for(self, how: str) -> int:
        return {"fast": signal.SIGTERM}[how]

    def connect(self) -> Any:
        import MySQLdb

        return MySQLdb.connect(host="127.0.0.1", port=self.port, user=self.user, connect_timeout=2)

    def create_database(self, name: str) -> None:
        conn = self.connect()
        try:
            conn.cursor().execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        finally:
            conn.close()

    def django_settings(self, name: str) -> dict[str, Any]:
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "USER": self.user,
            "PASSWORD": "",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "OPTIONS": {"charset": "utf8mb4"},
        }

    def environment(self, name: str) -> dict[str, str]:
        return {
            "FIREFLY_TEST_DB": "mariadb",
            "FIREFLY_TEST_DB_NAME": name,
            "FIREFLY_TEST_MYSQL_USER": self.user,
            "FIREFLY_TEST_MYSQL_PASSWORD": "",
            "FIREFLY_TEST_MYSQL_HOST": "127.0.0.1",
            "FIREFLY_TEST_MYSQL_PORT": str(self.port),
        }


SERVERS: dict[str, type[DatabaseServer]] = {
    "postgres": PostgresServer,
    "mariadb": MariadbServer,
}
