"""A consumer through Debian's PgBouncer in transaction mode (docs/operations.md): its claims,
completions and timeouts go through the pooler, and its LISTEN connection, which a transaction
pooler would leave deaf, connects directly (``FIREFLY_LISTEN_DATABASE``).

The PgBouncer runs on a port of its own in front of the shared PostgreSQL server, started and
stopped by the test. Debian's PgBouncer (1.18) keeps no prepared statements across
transactions, so the pooled alias turns psycopg's off (``"prepare_threshold": None``).
"""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from firefly_tasks.models import TaskModel, TaskStatus
from tests.conftest import Consumer
from tests.faults.servers import free_port
from tests.testapp import tasks

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PgBouncer is PostgreSQL's"),
]

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
# Every wait below is about ten times what it takes on an idle machine.
WAKE_BOUND = 10.0
DRAIN_BOUND = 60.0


@pytest.fixture
def bouncer() -> Iterator[int]:
    """A PgBouncer in transaction mode in front of the test database's server: its port."""
    if not os.path.exists(PGBOUNCER):
        if os.environ.get("CI"):
            pytest.fail("Debian's pgbouncer is not installed (.ci/run installs it)")
        pytest.skip("Debian's pgbouncer is not installed: apt-get install pgbouncer")
    with tempfile.TemporaryDirectory(prefix="firefly-pgbouncer-") as name:
        yield from _bouncer(Path(name))


def _bouncer(here: Path) -> Iterator[int]:
    # Open to the unprivileged user PgBouncer switches to (it refuses to run as root).
    here.chmod(0o777)
    port = free_port()
    db = settings.DATABASES["default"]
    (here / "users.txt").write_text(f'"{db["USER"]}" ""\n')
    (here / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={db['HOST']} port={db['PORT']}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {here / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 50\n"
        f"logfile = {here / 'pgbouncer.log'}\n"
    )
    for path in here.iterdir():
        path.chmod(0o666)
    user = "postgres" if os.geteuid() == 0 else None
    process = subprocess.Popen(
        [PGBOUNCER, *(["-u", user] if user else []), str(here / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, "pgbouncer exited at start"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("pgbouncer did not listen within 10 s")


def pooled_settings(port: int, listen_directly: bool) -> dict[str, Any]:
    """The test project's databases with ``default`` through the pooler, and ``direct``
    the same database without it."""
    databases = copy.deepcopy(settings.DATABASES)
    databases["direct"] = copy.deepcopy(databases["default"])
    pooled = databases["default"]
    pooled["PORT"] = str(port)
    pooled["OPTIONS"] = {**pooled.get("OPTIONS", {}), "prepare_threshold": None}
    pooled["DISABLE_SERVER_SIDE_CURSORS"] = True
    overrides: dict[str, Any] = {
        "DATABASES": databases,
        # An idle consumer polls every 30 s: a task that starts at once was woken by a
        # notification.
        "FIREFLY_CONSUMER_NAP_TIME": 30,
        "FIREFLY_MAX_POLL_INTERVAL": 30,
    }
    if listen_directly:
        overrides["FIREFLY_LISTEN_DATABASE"] = "direct"
    return overrides


def wait_until(condition: Callable[[], bool], bound: float) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < bound, f"not within {bound} s"
        time.sleep(0.02)
    return time.monotonic() - start


def finished(pk: int) -> bool:
    return TaskModel.objects.get(pk=pk).status in (TaskStatus.COMPLETED, TaskStatus.FAILED)


def test_a_consumer_through_a_transaction_pooler_drains_and_is_woken(
    bouncer: int, start_consumer: Callable[..., Consumer]
) -> None:
    # Enough tasks that each statement runs many times: psycopg would prepare them.
    first = tasks.add.schedule_many([((i, i), {}) for i in range(300)])
    consumer = start_consumer(**pooled_settings(bouncer, listen_directly=True))
    wait_until(lambda: not TaskModel.objects.exclude(status=TaskStatus.COMPLETED).exists(),
               DRAIN_BOUND)  # fmt: skip
    results = TaskModel.objects.values_list("returned_data", flat=True)
    assert sorted(str(result) for result in results) == sorted(str(2 * i) for i in range(300))
    assert len(first) == 300

    # Idle now, polling every 30 s: a new task starts at once only if the LISTEN, made on
    # the direct connection, heard it.
    time.sleep(1)
    woken = tasks.add.schedule(20, 22)
    wait_until(lambda: finished(woken.pk), WAKE_BOUND)
    assert TaskModel.objects.get(pk=woken.pk).status == TaskStatus.COMPLETED

    # A timeout's statement limit is SET LOCAL: it holds in the task's transaction through
    # the pooler, and goes with it.
    slow = tasks.sleep_in_query.schedule(30)
    wait_until(lambda: finished(slow.pk), WAKE_BOUND + 2)
    slow.refresh_from_db()
    assert slow.status == TaskStatus.FAILED and slow.error.startswith("TaskTimeout")
    after = tasks.add.schedule(1, 1)
    wait_until(lambda: finished(after.pk), WAKE_BOUND)
    assert TaskModel.objects.get(pk=after.pk).status == TaskStatus.COMPLETED
    consumer.kill()
