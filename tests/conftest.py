from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from django.conf import settings
from django.db import connection, connections

if TYPE_CHECKING:
    from firefly_tasks.models import TaskModel

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

# Short timings for consumer processes started by tests.
CHILD_SETTINGS: dict[str, Any] = {
    "FIREFLY_CONSUMER_NAP_TIME": 0.001,
    "FIREFLY_MAX_POLL_INTERVAL": 0.05,
}


def pytest_sessionstart(session: pytest.Session) -> None:
    """An unreachable database fails the run at once, never skips it."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return
    try:
        # A raw driver connection: pytest-django blocks the ORM's until a test asks for it.
        raw = connection.get_new_connection(connection.get_connection_params())
        raw.close()
    except Exception as exc:  # pragma: no cover - only when the database is down
        name = os.environ.get("FIREFLY_TEST_DB")
        pytest.exit(f"FIREFLY_TEST_DB={name}: database unreachable: {exc}", returncode=3)


# Under a tracer (coverage.py, a debugger) Python 3.11 raises no timeout or cancel inside a
# task's thread (docs/timeouts.md): the tests of that delivery run without one, or on 3.12+.
raises_in_threads = pytest.mark.skipif(
    sys.version_info < (3, 12) and sys.gettrace() is not None,
    reason="under a tracer, Python 3.11 raises no timeout or cancel inside a task's thread",
)


def child_env(overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """The environment of a process of the test project on the test database."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        FIREFLY_TEST_DB_NAME=str(connection.settings_dict["NAME"]),
        FIREFLY_TEST_QUEUE_DB_NAME=str(connections["queue"].settings_dict["NAME"]),
        FIREFLY_TEST_OVERRIDES=json.dumps({**CHILD_SETTINGS, **(overrides or {})}),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    return env


class Consumer:
    """A real ``consume_tasks`` process against the test database."""

    def __init__(self, args: list[str], overrides: dict[str, Any]) -> None:
        env = child_env(overrides)
        self.args = args
        # A file, not a pipe: a consumer that logs more than a pipe holds while nobody reads
        # would block on its next log line.
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed when the test ends
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "consume_tasks", *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"consumer {self.args} still running after {timeout}s") from None

    def output(self) -> str:
        """What the consumer printed, once it has exited ("" while it runs)."""
        if self.process.poll() is None:
            return ""
        self.log.seek(0)
        return self.log.read()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def start_consumer(transactional_db: None) -> Iterator[Callable[..., Consumer]]:
    """Start ``consume_tasks`` processes; every one is reaped when the test ends."""
    started: list[Consumer] = []

    def start(*args: str, **overrides: Any) -> Consumer:
        consumer = Consumer(list(args), overrides)
        started.append(consumer)
        return consumer

    yield start
    if os.environ.get("COVERAGE_RUN"):
        # Measured: a consumer still running is stopped at once (two SIGTERMs) rather than
        # killed, so that it writes its coverage data as it exits.
        running = [consumer for consumer in started if consumer.process.poll() is None]
        for signum in (signal.SIGTERM, signal.SIGTERM):  # apart: two at once count as one
            for consumer in running:
                consumer.signal(signum)
            time.sleep(0.2)
        for consumer in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                consumer.process.wait(10)
    for consumer in started:
        if consumer.process.poll() is None:
            consumer.signal(signal.SIGKILL)
        consumer.process.wait(10)
        consumer.log.close()


_figures: list[str] = []


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record measured numbers (recovery time, re-runs, ...) for the run's summary."""

    def record(**values: Any) -> None:
        shown = " ".join(
            f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}"
            for key, value in values.items()
        )
        _figures.append(f"{request.node.name} [{connection.vendor}]: {shown}")

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _figures:
        terminalreporter.section("figures measured by the tests")
        for line in _figures:
            terminalreporter.write_line(line)


def run_at_once(function: Callable[[], T], threads: int = 4) -> list[T]:
    """Run ``function`` in ``threads`` threads released together, each on its own database
    connection; return what each returned, or raise the first error one of them raised."""
    results: list[T] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def target() -> None:
        try:
            barrier.wait(10)
            results.append(function())
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's

    started = [threading.Thread(target=target) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(60)
    if errors:
        raise errors[0]
    assert len(results) == threads, "a thread did not finish within 60 s"
    return results


def run_pending_in_thread(delay: float = 0.0) -> threading.Thread:
    """Run the pending tasks (``run_pending_tasks()``) in another thread, on its own
    connection, after ``delay`` seconds; the started thread."""
    from firefly_tasks.testing import run_pending_tasks

    def later() -> None:
        try:
            time.sleep(delay)
            run_pending_tasks()
        finally:
            connections.close_all()  # this thread's, on every database it used

    thread = threading.Thread(target=later)
    thread.start()
    return thread


def wait_until(predicate: Callable[[], bool], timeout: float = 30, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def outcomes(row: TaskModel) -> list[str]:
    """The outcomes of a task's attempts, in order."""
    return list(row.attempts.order_by("number").values_list("outcome", flat=True))


def finished(*rows: TaskModel) -> Callable[[], bool]:
    """A condition for :func:`wait_until`: none of ``rows`` waits or runs any more."""
    from firefly_tasks.models import TaskModel
    from firefly_tasks.states import FINISHED_STATUSES

    ids = [row.pk for row in rows]
    return lambda: (
        not TaskModel.objects.filter(pk__in=ids).exclude(status__in=FINISHED_STATUSES).exists()
    )
