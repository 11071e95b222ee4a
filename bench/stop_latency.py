"""How long a task takes to stop, with either pool, after its timeout or its cancel.

A real ``consume_tasks`` process (``--concurrency 1``, ``--pool thread`` or ``process``,
heartbeats every second) runs, one after another, ``--rounds`` tasks that spin in Python for a
minute (``--task spin``) or sleep in C (``--task sleep``: only the process pool stops those
before the grace):

1. **Timeout**: with ``timeout=1``; the figure is the attempt's end minus its start minus the
   timeout (the attempt's times are the consumer's).
2. **Cancel**: without a timeout; once it runs, ``cancel(running=True)`` from this process; the
   figure is from the cancel's commit to the start of the next task, which the stopped thread
   picks up (a ``stamp`` task scheduled behind it; one clock, one machine). Delivered by
   NOTIFY on PostgreSQL, by the consumer's heartbeat elsewhere (``FIREFLY_HEARTBEAT_INTERVAL``,
   1 s here, 5 s by default).

    .venv/bin/python bench/stop_latency.py [--db sqlite|postgres|mariadb] [--rounds 10]
        [--pool thread|process] [--task spin|sleep]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scratch

ROOT = Path(__file__).resolve().parent.parent
BEAT = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pool", choices=("thread", "process"), default="thread")
    parser.add_argument("--task", choices=("spin", "sleep"), default="spin")
    args = parser.parse_args()
    with scratch.database(args.db, "stop") as name:
        measure(args, name)


def wait_for(pk: int, status: str, timeout: float = 120) -> None:
    from firefly_tasks.models import TaskModel

    deadline = time.monotonic() + timeout
    while not TaskModel.objects.filter(pk=pk, status=status).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the consumer did not get there in time")
        time.sleep(0.002)


def measure(args: argparse.Namespace, name: str) -> None:
    env = {"FIREFLY_BENCH_DB": args.db, "FIREFLY_BENCH_DB_NAME": name,
           "DJANGO_SETTINGS_MODULE": "bench.settings"}  # fmt: skip
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.benchapp.tasks import sleep, spin, stamp
    from firefly_tasks.models import TaskModel

    call_command("migrate", verbosity=0)
    overrides = {"FIREFLY_HEARTBEAT_INTERVAL": BEAT, "FIREFLY_WORKER_TIMEOUT": 30}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django",
            "consume_tasks",
            "--concurrency",
            "1",
            "--pool",
            args.pool,
        ],
        cwd=ROOT,
        env={
            **os.environ,
            **env,
            "PYTHONPATH": str(ROOT),
            "FIREFLY_BENCH_OVERRIDES": json.dumps(overrides),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    late, delivered = [], []
    body = spin if args.task == "spin" else sleep
    try:
        for _ in range(args.rounds):
            row = body.using(timeout=1).schedule(60)
            wait_for(row.pk, "failed")
            attempt = TaskModel.objects.get(pk=row.pk).attempts.get()
            late.append((attempt.finished - attempt.started).total_seconds() - 1.0)
        for _ in range(args.rounds):
            row = body.schedule(60)
            marker = stamp.schedule()
            wait_for(row.pk, "running")
            time.sleep(0.3)  # executing, not only claimed
            cancelled_at = time.time()
            assert TaskModel.objects.filter(pk=row.pk).cancel(running=True) == 1
            wait_for(marker.pk, "completed")
            delivered.append(TaskModel.objects.get(pk=marker.pk).returned - cancelled_at)
    finally:
        process.terminate()
        process.wait(30)
        connection.close()
    for label, values in (("timeout", late), ("cancel", delivered)):
        ms = sorted(v * 1000 for v in values)
        print(
            f"stop {args.db} {label}: median {statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms "
            f"over {len(ms)} tasks ({args.pool} pool, {args.task})"
        )


if __name__ == "__main__":
    main()
