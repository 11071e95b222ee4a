"""What the rollups cost the consumer's loop: one process claims and runs no-op tasks with a
``BatchRunner``, as a consumer thread does, with the rollups written for one claimed batch and
not for the next (the tally's methods swapped for no-ops), in pairs whose order alternates
(``bench/paired.py``). Prints the time a task with and without the rollups (CPU: this
process's, all the work there is on SQLite; wall: adds the server's share) and the cost of the
rollups as a share: the median of the per-pair ratios, with their interquartile range, and the
ratio of the totals.

    .venv/bin/python bench/rollup_cost.py [--db sqlite|postgres|mariadb] [--tasks 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import paired, scratch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="sqlite")
    args = parser.parse_args()
    with scratch.database(args.db, "rollup", in_memory=True) as name:
        measure(args.tasks, args.db, name)


@contextmanager
def no_rollups() -> Iterator[None]:
    """The build without rollups, for the length of the block: nothing tallied, nothing
    written (what the tally's callers see is an empty tally)."""
    from firefly_tasks.rollups import Tally

    saved = {name: getattr(Tally, name) for name in ("completed", "failed", "take")}
    nothing: Callable[..., Any] = lambda *args, **kwargs: None  # noqa: E731
    for name in saved:
        setattr(Tally, name, nothing)
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(Tally, name, method)


def measure(tasks: int, vendor: str, name: str) -> None:
    os.environ["FIREFLY_BENCH_DB"] = vendor
    os.environ["FIREFLY_BENCH_DB_NAME"] = name
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.benchapp.tasks import noop
    from firefly_tasks.batches import BatchRunner
    from firefly_tasks.models import TaskModel, TaskRollup, WorkerModel

    call_command("migrate", verbosity=0)
    noop.schedule_many([() for _ in range(tasks)])
    worker = WorkerModel.objects.create(name="rollup-cost", hostname="here", pid=os.getpid())
    runner = BatchRunner(worker, threading.Event())

    def batch(rollups: bool) -> int:
        with contextlib.nullcontext() if rollups else no_rollups():
            rows = TaskModel.objects.claim(["default"], 250, worker.pk)
            return len(runner.run(rows)[0]) if rows else 0

    paired.compare(batch, f"rollups {vendor}")
    counted = TaskRollup.objects.aggregate(total=django.db.models.Sum("completed"))["total"]
    connection.close()
    print(f"rollups {vendor}: {counted} completions in the rollups")


if __name__ == "__main__":
    main()
