"""A pool of real ``consume_tasks`` processes that the fault campaign kills, pauses and
replaces, as a process manager (systemd, Kubernetes) would after a crash.

Every consumer leads its own process group and writes its log to a file (a pipe nobody reads
would fill and block it); :meth:`ConsumerPool.destroy` kills every group it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import CHILD_SETTINGS, ROOT

# How long a consumer may take to exit after SIGTERM once its running tasks are done.
EXIT_TIMEOUT = 30.0


@dataclass
class Consumer:
    process: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.time)
    # What happened to it: killed (by the campaign), crashed (a task killed it), exited
    # (on its own, with ``returncode``), stopped (by SIGTERM at the end).
    fate: str = ""
    # When the campaign held it with SIGSTOP: (stopped at, continued at), time.time().
    paused: tuple[float, float] | None = None
    returncode: int | None = None
    killed_at: float = 0.0  # time.time() of the campaign's kill -9

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


class ConsumerPool:
    """Keeps ``size`` consumers running; remembers every one it ever started."""

    def __init__(self, environment: dict[str, str], logs: Path, size: int, args: list[str]) -> None:
        self.environment = environment
        self.logs = logs
        self.size = size
        self.args = args
        self.consumers: list[Consumer] = []

    @staticmethod
    def child_environment(database: dict[str, str], overrides: dict[str, Any]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(database)
        env.update(
            DJANGO_SETTINGS_MODULE="tests.settings",
            FIREFLY_TEST_OVERRIDES=json.dumps({**CHILD_SETTINGS, **overrides}),
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
        )
        return env

    def alive(self) -> list[Consumer]:
        return [c for c in self.consumers if c.alive and not c.fate]

    def start(self) -> Consumer:
        log = self.logs / f"consumer-{len(self.consumers):03d}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "django", "consume_tasks", *self.args],
                cwd=ROOT,
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        consumer = Consumer(process, log)
        self.consumers.append(consumer)
        self.journal(f"started {consumer.pid} ({log.name})")
        return consumer

    def journal(self, event: str) -> None:
        with (self.logs / "campaign.journal").open("a") as journal:
            journal.write(f"{time.time():.3f} {event}\n")

    def supervise(self) -> None:
        """Note the consumers that ended on their own and start their replacements."""
        for consumer in self.consumers:
            if consumer.fate or consumer.alive:
                continue
            consumer.returncode = consumer.process.returncode
            killed = consumer.returncode == -signal.SIGKILL
            consumer.fate = "crashed" if killed else "exited"
            self.journal(f"{consumer.fate} {consumer.pid} returncode={consumer.returncode}")
        while len(self.alive()) < self.size:
            self.start()

    def kill(self, consumer: Consumer) -> None:
        if not consumer.alive:  # one of its tasks was quicker
            return
        consumer.fate = "killed"
        consumer.killed_at = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(consumer.pid, signal.SIGKILL)
        consumer.returncode = consumer.process.wait(EXIT_TIMEOUT)

    def pause(self, consumer: Consumer) -> float:
        os.killpg(consumer.pid, signal.SIGSTOP)
        return time.time()

    def resume(self, consumer: Consumer, paused_at: float) -> None:
        os.killpg(consumer.pid, signal.SIGCONT)
        consumer.paused = (paused_at, time.time())

    def stop_all(self) -> None:
        """SIGTERM every live consumer; wait for each to exit."""
        self.supervise()
        running = self.alive()
        for consumer in running:
            consumer.fate = "stopped"
            consumer.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + EXIT_TIMEOUT
        for consumer in running:
            try:
                consumer.returncode = consumer.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                consumer.fate = "hung"
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(consumer.pid, signal.SIGKILL)
                consumer.returncode = consumer.process.wait(EXIT_TIMEOUT)

    def destroy(self) -> None:
        """Kill every process group this pool started, whatever state it is in."""
        for consumer in self.consumers:
            # Only unreaped ones: a reaped consumer's PID may be another process's by now.
            if consumer.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(consumer.pid, signal.SIGKILL)
        for consumer in self.consumers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                consumer.process.wait(EXIT_TIMEOUT)
