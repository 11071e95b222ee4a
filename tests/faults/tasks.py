"""Tasks of the fault campaign. Each records that it started before it does anything else, in
a file of its consumer process outside any database: the proof that an attempt really ran,
whatever the database kept of it.

Consumers find this module through ``FIREFLY_TASK_MODULES``; ``FIREFLY_FAULTS_RUNS`` names
the folder of the run records.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from firefly_tasks import current_task, task
from firefly_tasks.context import RunningTask
from tests.testapp.models import Execution, Note

RUNS_ENV = "FIREFLY_FAULTS_RUNS"


@dataclass(frozen=True)
class Run:
    """One start of a task, as its consumer recorded it."""

    task_id: int
    attempt: int
    pid: int
    at: float  # time.time() when it started


def record_run() -> RunningTask:
    row = current_task()
    assert row is not None
    line = f"{row.pk} {row.attempt} {os.getpid()} {time.time():.6f}\n"
    # Written and closed before the task goes on: a SIGKILL a moment later cannot lose it.
    with Path(os.environ[RUNS_ENV], f"{os.getpid()}.runs").open("a") as runs:
        runs.write(line)
    return row


def read_runs(folder: Path) -> list[Run]:
    runs = []
    for path in folder.glob("*.runs"):
        for line in path.read_text().splitlines():
            task_id, attempt, pid, at = line.split()
            runs.append(Run(int(task_id), int(attempt), int(pid), float(at)))
    return runs


def _kill_own_consumer() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@task()
def note_marker(marker: str) -> str:
    """Atomic and fast (consumers group such tasks into one commit): its note commits with
    its completion, or neither does."""
    record_run()
    Note.objects.create(text=marker)
    return marker


@task()
def note_marker_slowly(marker: str, seconds: float) -> str:
    """Atomic, and slow enough to run alone in its own transaction."""
    record_run()
    time.sleep(seconds)
    Note.objects.create(text=marker)
    return marker


@task(atomic=False)
def record_execution_slowly(seconds: float) -> int:
    """Not atomic: its write commits before its completion, once per run."""
    row = record_run()
    time.sleep(seconds)
    Execution.objects.create(task_id=row.pk, pid=os.getpid(), attempt=row.attempt)
    return row.attempt


@task()
def kill_consumer_once(marker: str) -> str:
    """Kills its consumer the first time it runs (as a segfault in a C extension would);
    completes when run again."""
    record_run()
    row = current_task()
    assert row is not None
    try:
        # Created once per task, whichever consumer runs it first.
        Path(os.environ[RUNS_ENV], f"{row.pk}.crashed").touch(exist_ok=False)
    except FileExistsError:
        Note.objects.create(text=marker)
        return marker
    _kill_own_consumer()
    raise AssertionError("unreachable")


@task()
def kill_consumer_always() -> None:
    """Kills its consumer every time it runs: a poison task."""
    record_run()
    _kill_own_consumer()
