"""What the rollups cost the consumer's loop: one process claims and runs no-op tasks with a
``BatchRunner``, as a consumer thread does, with the rollups written for one claimed batch and
not for the next (the tally's methods swapped for no-ops), in pairs whose order alternates.
Adjacent batches run milliseconds apart, so the machine's drift, which moves whole runs of
``bench/drain.py`` by ±5 % or more on a shared two-core machine, hits both sides of a pair
alike. Prints the time a task with and without the rollups (CPU: this process's, all the work
there is on SQLite; wall: adds the server's share, one round trip after another) and the cost
of the rollups as a share: the median of the per-pair ratios, with their interquartile range,
and the ratio of the totals.

    .venv/bin/python bench/rollup_cost.py [--db sqlite|postgres|mariadb] [--tasks 100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="sqlite")
    args = parser.parse_args()
    if args.db != "sqlite":
        from bench import lib

        database = lib.Database(args.db, "rollup")  # dropped when this script exits
        measure(args.tasks, args.db, database.name)
        return
    where = "/dev/shm" if os.path.isdir("/dev/shm") else None
    folder = tempfile.mkdtemp(prefix="ffrollup-", dir=where)
    try:
        measure(args.tasks, "sqlite", os.path.join(folder, "rollup.sqlite3"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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

    def batch(rollups: bool) -> tuple[int, float, float]:
        """Claim and run one batch; its tasks, CPU seconds and wall seconds."""
        cpu, wall = time.process_time(), time.perf_counter()
        if rollups:
            rows = TaskModel.objects.claim(["default"], 250, worker.pk)
            done = len(runner.run(rows)[0]) if rows else 0
        else:
            with no_rollups():
                rows = TaskModel.objects.claim(["default"], 250, worker.pk)
                done = len(runner.run(rows)[0]) if rows else 0
        return done, time.process_time() - cpu, time.perf_counter() - wall

    batch(True), batch(False)  # warm: the first run of a task name is never grouped
    totals = {True: [0, 0.0, 0.0], False: [0, 0.0, 0.0]}
    ratios: dict[str, list[float]] = {"CPU": [], "wall": []}
    pair = 0
    while True:
        order = (True, False) if pair % 2 else (False, True)
        sides = {rollups: batch(rollups) for rollups in order}
        if min(done for done, _, _ in sides.values()) < 200:  # the queue ran dry
            break
        for rollups, figures in sides.items():
            for i, value in enumerate(figures):
                totals[rollups][i] += value
        (on_n, on_cpu, on_wall), (off_n, off_cpu, off_wall) = sides[True], sides[False]
        ratios["CPU"].append((on_cpu / on_n) / (off_cpu / off_n))
        ratios["wall"].append((on_wall / on_n) / (off_wall / off_n))
        pair += 1
    counted = TaskRollup.objects.aggregate(total=django.db.models.Sum("completed"))["total"]
    connection.close()
    print(f"rollups {vendor}: {pair} pairs of batches, {counted} completions in the rollups")
    for i, figure in ((1, "CPU"), (2, "wall")):
        per = {side: totals[side][i] / totals[side][0] * 1e6 for side in (True, False)}
        low, _, high = statistics.quantiles(ratios[figure], n=4)
        median = statistics.median(ratios[figure])
        print(
            f"rollups {vendor} {figure}: with {per[True]:.2f} µs/task, without "
            f"{per[False]:.2f} µs/task; with ÷ without: per pair {median:.4f} "
            f"(IQR {low:.4f}–{high:.4f}), totals {per[True] / per[False]:.4f}"
        )


if __name__ == "__main__":
    main()
