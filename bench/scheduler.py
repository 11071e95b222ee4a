"""What periodic schedules cost, with 1,000 enabled schedules in a fresh database:

1. **Burst**: 1,000 ticks due at the same second, enqueued by the scheduler's passes
   (``firefly_tasks.ticks.enqueue_due`` until nothing is due): seconds (target: under 1).
2. **Idle**: a real ``consume_tasks`` process, none of the schedules due, its CPU time (all
   threads, from /proc) over ``--window`` seconds as % of one core, beside one started with
   ``--no-scheduler`` (target: under 1 %).
3. **Drain**: the consumer's claim-and-run loop (a ``BatchRunner`` in this thread, as
   ``bench/rollup_cost.py`` runs it) over no-op tasks while a scheduler thread runs, in
   segments of ``--segment`` seconds with the scheduler running and paused in turn: tasks a
   second with ÷ without, per pair of adjacent segments (target: within 3 %).

    .venv/bin/python bench/scheduler.py [--db sqlite|postgres|mariadb] [--window 20]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scratch

ROOT = Path(__file__).resolve().parent.parent
SCHEDULES = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="sqlite")
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--segment", type=float, default=2.0)
    parser.add_argument("--segments", type=int, default=32)
    args = parser.parse_args()
    with scratch.database(args.db, "sched") as name:
        measure(args, name)


def measure(args: argparse.Namespace, name: str) -> None:
    env = {"FIREFLY_BENCH_DB": args.db, "FIREFLY_BENCH_DB_NAME": name,
           "DJANGO_SETTINGS_MODULE": "bench.settings"}  # fmt: skip
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    try:
        burst(args.db)
        idle(args, env)
        drain(args)
    finally:
        connection.close()


def make_schedules(due: bool) -> None:
    from firefly_tasks.clock import database_now
    from firefly_tasks.models import ScheduleModel

    now = database_now()
    ScheduleModel.objects.all().delete()
    hour = datetime.timedelta(hours=1)
    ScheduleModel.objects.bulk_create(
        ScheduleModel(
            name=f"s{i:04}",
            func_name="bench.benchapp.tasks.noop",
            every=hour,
            anchor=now - hour / 2,  # the grid's next tick half an hour away
            next_tick=now - datetime.timedelta(seconds=1) if due else now + hour / 2,
        )
        for i in range(SCHEDULES)
    )


def burst(vendor: str) -> None:
    from firefly_tasks import ticks
    from firefly_tasks.models import TaskModel

    make_schedules(due=True)
    began = time.perf_counter()
    passes = 0
    while ticks.enqueue_due()[0]:
        passes += 1
    took = time.perf_counter() - began
    stored = TaskModel.objects.exclude(schedule=None).count()
    print(f"scheduler {vendor} burst: {stored} ticks enqueued in {took:.3f} s ({passes} passes)")
    TaskModel.objects.all().delete()


def idle(args: argparse.Namespace, env: dict[str, str]) -> None:
    from bench.processes import cpu_seconds

    make_schedules(due=False)
    shares = {}
    for flag in ("", "--no-scheduler"):
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "consume_tasks", *([flag] if flag else [])],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(5)  # started, synced, settled
            start, t0 = cpu_seconds(process.pid), time.monotonic()
            time.sleep(args.window)
            used = cpu_seconds(process.pid) - start
            shares[flag or "scheduler"] = used / (time.monotonic() - t0) * 100
        finally:
            process.terminate()
            process.wait(30)
    print(
        f"scheduler {args.db} idle: {shares['scheduler']:.2f} % of a core with the scheduler and "
        f"{SCHEDULES} schedules, {shares['--no-scheduler']:.2f} % with --no-scheduler"
    )


def drain(args: argparse.Namespace) -> None:
    from bench.benchapp.tasks import noop
    from firefly_tasks.batches import BatchRunner
    from firefly_tasks.models import TaskModel, WorkerModel
    from firefly_tasks.scheduler import Scheduler

    make_schedules(due=False)
    worker = WorkerModel.objects.create(name="sched-bench", hostname="here", pid=os.getpid())
    runner = BatchRunner(worker, threading.Event())
    rates: dict[bool, list[float]] = {True: [], False: []}
    for segment in range(args.segments):
        running = segment % 4 in (1, 2)  # off, on, on, off, off, on, ...: pairs alternate order
        stopping = threading.Event()
        if running:
            Scheduler(worker, stopping).start()
        noop.schedule_many([() for _ in range(30_000)])
        done, began = 0, time.perf_counter()
        while time.perf_counter() - began < args.segment:
            rows = TaskModel.objects.claim(["default"], 250, worker.pk)
            done += len(runner.run(rows)[0])
        rates[running].append(done / (time.perf_counter() - began))
        stopping.set()
        TaskModel.objects.all().delete()
    ratios = [a / b for a, b in zip(rates[True], rates[False], strict=True)]
    low, _, high = statistics.quantiles(ratios, n=4)
    print(
        f"scheduler {args.db} drain: {statistics.median(rates[True]):,.0f} tasks/s with the "
        f"scheduler running, {statistics.median(rates[False]):,.0f} without; with ÷ without "
        f"per pair {statistics.median(ratios):.4f} (IQR {low:.4f}–{high:.4f})"
    )


if __name__ == "__main__":
    main()
