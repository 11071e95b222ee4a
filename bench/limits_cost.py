"""What flow control costs the consumer's loop: one process claims and runs no-op tasks with a
``BatchRunner``, as a consumer thread does (batches of 250).

1. **A full key ahead of other work**: 100,000 ready tasks of one concurrency key (limit 1,
   its slot taken, priority 10) sit ahead of 20,000 plain tasks in one queue; a second queue
   holds 20,000 plain tasks only. First the claims that park the key's backlog (reported as a
   one-off: their number and time), then batches of the first queue against batches of the
   second, in pairs whose order alternates (``bench/paired.py``): a claim for other work behind
   a full key, against an unlimited claim (target: at most twice).
2. **Drain rates**, one batch of each kind in turn until all are done: plain no-op tasks, tasks
   with a unique key each, and tasks under one concurrency key with a limit of 50.

    .venv/bin/python bench/limits_cost.py [--db sqlite|postgres|mariadb] [--backlog 100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import paired, scratch

BATCH = 250


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="sqlite")
    args = parser.parse_args()
    with scratch.database(args.db, "limits", in_memory=True) as name:
        measure(args, name)


def measure(args: argparse.Namespace, name: str) -> None:
    os.environ["FIREFLY_BENCH_DB"] = args.db
    os.environ["FIREFLY_BENCH_DB_NAME"] = name
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.benchapp.tasks import noop
    from firefly_tasks.batches import BatchRunner
    from firefly_tasks.models import TaskModel, TaskStatus, WorkerModel

    call_command("migrate", verbosity=0)
    worker = WorkerModel.objects.create(name="limits-cost", hostname="here", pid=os.getpid())
    runner = BatchRunner(worker, threading.Event())
    label = f"limits {args.db}"

    def run(queue: str) -> int:
        rows = TaskModel.objects.claim([queue], BATCH, worker.pk)
        return len(runner.run(rows)[0]) if rows else 0

    # 1. A full key ahead of other work.
    hot = noop.using(queue="behind", priority=10, concurrency_limit=1, concurrency_key="hot")
    hot.schedule()
    (holder,) = TaskModel.objects.claim(["behind"], 1, worker.pk)  # its one slot, kept taken
    for start in range(0, args.backlog, 10_000):
        hot.schedule_many([() for _ in range(min(10_000, args.backlog - start))])
    noop.using(queue="behind").schedule_many([() for _ in range(args.tasks)])
    noop.using(queue="alone").schedule_many([() for _ in range(args.tasks)])
    analyze(connection)

    began, claims = time.perf_counter(), 0
    while run("behind") == 0:  # each claim parks a chunk of the backlog, and runs nothing
        claims += 1
    parking = time.perf_counter() - began
    parked = TaskModel.objects.filter(status=TaskStatus.BLOCKED).count()
    print(
        f"{label}: {claims} claims parked {parked:,} tasks of the full key in {parking:.2f} s "
        f"({parking / max(parked, 1) * 1e6:.1f} µs a task, once)"
    )
    paired.compare(
        lambda behind: run("behind" if behind else "alone"), f"{label} behind a full key"
    )
    assert TaskModel.objects.get(pk=holder.pk).status == TaskStatus.RUNNING

    # 2. Drain rates.
    n = args.tasks
    noop.using(queue="plain").schedule_many([() for _ in range(n)])
    began = time.perf_counter()
    for i in range(n):
        noop.using(queue="unique", unique_key=f"u{i}").schedule()
    print(f"{label}: scheduled {n:,} unique tasks at {n / (time.perf_counter() - began):,.0f}/s")
    noop.using(queue="limited", concurrency_limit=50, concurrency_key="fifty").schedule_many(
        [() for _ in range(n)]
    )
    analyze(connection)
    spent = {"plain": 0.0, "unique": 0.0, "limited": 0.0}
    done = dict.fromkeys(spent, 0)
    while True:
        progressed = False
        for queue in spent:
            began = time.perf_counter()
            ran = run(queue)
            spent[queue] += time.perf_counter() - began
            done[queue] += ran
            progressed = progressed or ran > 0
        if not progressed:
            break
    for queue in spent:
        rate = done[queue] / spent[queue] if spent[queue] else 0
        print(f"{label} drain {queue}: {done[queue]:,} tasks, {rate:,.0f}/s")
    connection.close()


def analyze(connection: Any) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute("ANALYZE TABLE firefly_tasks_taskmodel")
        else:
            cursor.execute("ANALYZE")


if __name__ == "__main__":
    main()
