"""The demo, end to end, as ``scripts/demo`` runs it, on a fresh SQLite file: its set-up
path, and the reloading consumer it starts.

Every step is a real ``demo_site/manage.py`` process with the demo's own settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "demo_site" / "manage.py"

# Run inside the demo project by `manage.py shell`: prints what the test asserts on.
REPORT = """
import contextlib
import json
from django.test import Client
from firefly_tasks.models import TaskModel

tasks = {}
for row in TaskModel.objects.order_by("id"):
    name = row.func_name.rsplit(".", 1)[-1]
    tasks.setdefault(name, []).append(
        {"status": row.status, "returned": str(row.returned), "error": row.error,
         "retry_attempts": row.retry_attempts}
    )
client = Client(HTTP_HOST="127.0.0.1")
pages = {"login": client.get("/admin/login/").status_code}
logged_in = client.login(username="admin", password="admin")
pages["admin"] = client.get("/admin/").status_code
pages["index"] = client.get("/").status_code
pages["dashboard"] = client.get("/admin/firefly_admin/task/dashboard/").status_code
pages["tasks"] = client.get("/admin/firefly_admin/task/").status_code
print(json.dumps({"tasks": tasks, "logged_in": logged_in, "pages": pages}))
"""


@pytest.fixture
def demo_env(tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "FIREFLY_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="demo_site.settings",
        FIREFLY_DEMO_DATABASE_URL=f"sqlite:///{tmp_path / 'var' / 'demo.sqlite3'}",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def manage(tmp_path: Path, demo_env: dict[str, str]) -> Callable[..., str]:
    def run(*args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [sys.executable, str(MANAGE), *args],
            cwd=tmp_path,
            env=demo_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    return run


def test_demo_setup_schedules_runs_and_serves_the_admin(
    manage: Callable[..., str], tmp_path: Path
) -> None:
    first = manage("setup_demo")
    again = manage("setup_demo")

    assert (tmp_path / "var" / "demo.sqlite3").exists()
    assert "username 'admin', password 'admin'" in first
    assert "Demo superuser created" in first
    assert "Demo superuser ready" in again

    assert "Scheduled 41 tasks" in manage("schedule_demo_tasks")
    manage("consume_tasks", "--burst", "--queue", "default", "--queue", "emails")
    report = json.loads(manage("shell", "-c", REPORT).strip().splitlines()[-1])

    tasks = report["tasks"]
    assert [t["returned"] for t in tasks["add"]] == [str(i + i) for i in range(20)]
    # Scheduled by place_order while it ran, then run by the same burst.
    assert len(tasks["send_order_confirmation"]) == 5
    for name in ("place_order", "send_order_confirmation", "send_newsletter"):
        assert {t["status"] for t in tasks[name]} == {"completed"}, name
    assert [t["returned"] for t in tasks["fetch_exchange_rate"]] == ["0.92", "0.79"]
    assert tasks["build_sales_report"][0]["status"] == "completed"
    # A burst does not wait for retry delays: each may or may not have come by its end.
    inventory = tasks["sync_inventory"][0]
    assert inventory["retry_attempts"] >= 1
    if inventory["status"] == "completed":
        assert inventory["returned"] == "SKU-1 in stock (attempt 3)"
    else:
        assert inventory["status"] == "created"
        assert inventory["error"].startswith("InventoryUnavailable: inventory service timed out")
    assert tasks["charge_card"][0]["error"] == "PaymentDeclined: card declined for order 1"
    assert tasks["charge_card"][0]["status"] in ("created", "failed")
    assert tasks["send_cart_reminder"][0]["status"] == "created"

    assert report["pages"]["login"] == 200
    assert report["logged_in"] is True
    assert report["pages"]["admin"] == 200
    assert report["pages"]["index"] == 200
    assert report["pages"]["dashboard"] == 200
    assert report["pages"]["tasks"] == 200


class Output:
    """The lines a process writes, collected by a thread as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def wait_for(self, predicate: Callable[[Output], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            assert time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.05)


def wait_for_status(database: Path, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with sqlite3.connect(database) as connection:
        query = "SELECT count(*) FROM firefly_tasks_taskmodel WHERE status = ?"
        while not connection.execute(query, [status]).fetchone()[0]:
            assert time.monotonic() < deadline, f"no task is {status}"
            time.sleep(0.05)
    connection.close()


def test_reloading_consumer_restarts_on_code_change_after_its_task_finishes(
    manage: Callable[..., str], demo_env: dict[str, str], tmp_path: Path
) -> None:
    manage("setup_demo")
    # Settings in a module of their own: touching it is the code change.
    (tmp_path / "reload_settings.py").write_text("from demo_site.settings import *  # noqa\n")
    env = {
        **demo_env,
        "DJANGO_SETTINGS_MODULE": "reload_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    process = subprocess.Popen(
        [sys.executable, str(MANAGE), "consume_tasks", "--reload"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(process)
    try:
        output.wait_for(lambda out: out.count("worker started") == 1)
        manage(
            "shell",
            "-c",
            "from demo_site.shop.tasks import build_sales_report; "
            "build_sales_report.schedule(seconds=3)",
        )
        wait_for_status(tmp_path / "var" / "demo.sqlite3", "running")
        os.utime(tmp_path / "reload_settings.py")

        output.wait_for(lambda out: out.count("worker started") == 2)
        # Ctrl-C reaches the whole process group, as in a terminal.
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    text = "".join(output.lines)

    assert "reload_settings.py changed, reloading" in text
    # The report ran once, to completion, before the first worker stopped.
    assert output.count("task completed") == 1
    completed = text.index("name=demo_site.shop.tasks.build_sales_report attempt=1")
    assert completed < text.index("worker stopped") < text.rindex("worker started")
    assert output.count("worker stopped") == 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _processes_in_group(group: int) -> list[str]:
    """The command lines of the processes still in process group ``group``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the command's closing parenthesis: state, ppid, pgrp, ...
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[2]) == group and stat[0] != "Z":
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue  # it exited meanwhile
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_ctrl_c_stops_the_demo_whose_output_is_piped_through_tee(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    # The project is installed in this venv already: a venv of one script that runs this
    # Python, stamped as installed, so the demo skips its pip install.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (venv / "bin" / "python").chmod(0o755)
    stamp = subprocess.run(
        ["sha1sum"], input=(ROOT / "pyproject.toml").read_bytes(), capture_output=True, check=True
    )
    (venv / ".installed-demo").write_bytes(stamp.stdout)
    port = _free_port()
    log = tmp_path / "demo.log"
    # tee dies of the Ctrl-C with the rest, so the demo's next write to the pipe is its last.
    shell = subprocess.Popen(
        ["bash", "-c", f'bash scripts/demo 2>&1 | tee "{log}" > /dev/null'],
        cwd=ROOT,
        env={**demo_env, "FIREFLY_VENV": str(venv), "FIREFLY_DEMO_PORT": str(port)},
        start_new_session=True,
    )
    group = shell.pid
    try:
        deadline = time.monotonic() + 120
        text = ""
        # "Starting development server at" on Django 5.2, "Starting WSGI ..." on 6.
        while "worker started" not in text or "development server at" not in text:
            assert shell.poll() is None and time.monotonic() < deadline, text
            time.sleep(0.1)
            text = log.read_text() if log.exists() else ""

        os.killpg(group, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        shell.wait(30)
        # Stopping takes a second or two: ten times that for the demo's processes to go.
        deadline = time.monotonic() + 30
        while (left := _processes_in_group(group)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        left = _processes_in_group(group)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        shell.wait(10)

    assert left == [], log.read_text()
