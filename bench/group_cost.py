"""What a group costs: a group of ``--tasks`` no-op members with a callback against as many
plain no-op tasks, in the same run, rounds interleaved.

For each round and each kind: schedule (plain: ``schedule_many()``; group:
``group(noop.si() ...).then(stamp_after.s()).schedule()``, timed), then drain with one
``consume_tasks --burst --concurrency 4`` process; the drain rate is the tasks over the time
from the first attempt's start to the last completion (the consumer's own times). For the
group, also the callback's start (its own stamp) after the last member's completion. Medians
over the rounds.

    .venv/bin/python bench/group_cost.py [--db sqlite|postgres|mariadb] [--tasks 10000]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scratch

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="sqlite")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with scratch.database(args.db, "group") as name:
        measure(args, name)


def measure(args: argparse.Namespace, name: str) -> None:
    scratch.set_up(args.db, name)
    from django.db import connection

    figures: dict[str, list[float]] = {}
    try:
        for _ in range(args.rounds):
            for kind in ("plain", "group"):
                for label, value in one_round(kind, args.tasks).items():
                    figures.setdefault(f"{kind} {label}", []).append(value)
    finally:
        connection.close()
    for label, values in figures.items():
        shown = ", ".join(f"{value:,.3f}" for value in values)
        print(f"{args.db} {label}: median {statistics.median(values):,.3f} ({shown})")
    plain, group = figures["plain drain tasks/s"], figures["group drain tasks/s"]
    ratio = statistics.median(group) / statistics.median(plain)
    print(f"{args.db} group ÷ plain drain rate: {ratio:.3f}")


def one_round(kind: str, n: int) -> dict[str, float]:
    from django.db.models import Max, Min

    from bench.benchapp.tasks import noop, stamp_after
    from firefly_tasks import group
    from firefly_tasks.models import TaskAttempt, TaskModel

    TaskAttempt.objects.all().delete()
    TaskModel.objects.all().delete()
    began = time.perf_counter()
    callback: Any = None
    if kind == "plain":
        members = noop.schedule_many([()] * n)
    else:
        members, callback = group(noop.si() for _ in range(n)).then(stamp_after.s()).schedule()
    scheduled = time.perf_counter() - began
    subprocess.run(
        [sys.executable, "-m", "django", "consume_tasks", "--burst", "--concurrency", "4"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    done = TaskModel.objects.filter(pk__in=[row.pk for row in members])
    span = done.aggregate(first=Min("started"), last=Max("completed"))
    assert done.filter(status="completed").count() == n
    figures = {
        "schedule s": scheduled,
        "drain tasks/s": n / (span["last"] - span["first"]).total_seconds(),
    }
    if callback is not None:
        callback.refresh_from_db()
        assert callback.status == "completed", callback.status
        # The callback's own stamp of its start (its row's ``started`` is its claim's time,
        # taken before the claim waits for SQLite's write lock).
        last = span["last"].timestamp()
        figures["callback start ms"] = (callback.returned - last) * 1000
    return figures


if __name__ == "__main__":
    main()
