"""A consumer's resident memory: idle after start-up, then after each of ``--rounds`` drains of
``--tasks`` no-op tasks (100,000 by default), for the thread pool and the process pool (the
consumer and its children summed, as the machine pays for them).

A real ``consume_tasks`` process (``--concurrency 4``) on a fresh database; each round
schedules its tasks with ``schedule_many`` and waits until none is left unfinished, then lets
the consumer idle a second before reading ``VmRSS`` from ``/proc``. Growth that stops after
the first rounds is caches filling (Django's, Python's allocator); growth that goes on with
every round would be a leak.

    .venv/bin/python bench/memory.py [--db sqlite|postgres|mariadb] [--tasks 100000]
        [--rounds 3] [--pool thread,process]

(``--systems`` and ``--runs``, which ``bench/pairs.py`` passes to every script, are accepted
and ignored.)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scratch

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 10_000  # tasks a schedule_many call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="sqlite")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", default="thread,process")
    parser.add_argument("--systems", help=argparse.SUPPRESS)
    parser.add_argument("--runs", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one pool, in a process of its own (Django is set up once a process)
        with scratch.database(args.db, f"memory{args.child}") as name:
            print(json.dumps(measure(args, args.child, name)))
        return
    rows = []
    for pool in args.pool.split(","):
        child = [*sys.argv[1:], "--child", pool]
        done = subprocess.run([sys.executable, __file__, *child], capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"the {pool} pool's run failed:\n{done.stderr}")
        rows.append((pool, json.loads(done.stdout.strip().splitlines()[-1])))
    print(f"consumer RSS, {args.db}, MiB (consumer + children), {args.tasks:,} tasks a round")
    header = " | ".join(f"after round {i + 1}" for i in range(args.rounds))
    print(f"| pool | idle | {header} |\n|---|---|" + "---|" * args.rounds)
    for pool, figures in rows:
        print(f"| {pool} | " + " | ".join(f"{mib:.1f}" for mib in figures) + " |")


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, in MiB."""
    total = 0
    for found in [pid, *descendants(pid)]:
        try:
            status = Path(f"/proc/{found}/status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def descendants(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            children.append(int(entry.name))
    return children + [grand for child in children for grand in descendants(child)]


def measure(args: argparse.Namespace, pool: str, name: str) -> list[float]:
    scratch.set_up(args.db, name)
    from django.db import connection

    from bench.benchapp.tasks import noop
    from firefly_tasks.models import TaskModel, TaskStatus

    consumer = subprocess.Popen(
        [sys.executable, "-m", "django", "consume_tasks", "--concurrency", "4", "--pool", pool],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    unfinished = (TaskStatus.CREATED, TaskStatus.RUNNING, TaskStatus.BLOCKED)
    try:
        time.sleep(5)  # start-up, the pool's children included
        figures = [rss_mib(consumer.pid)]
        for _ in range(args.rounds):
            for start in range(0, args.tasks, CHUNK):
                noop.schedule_many([() for _ in range(min(CHUNK, args.tasks - start))])
            while TaskModel.objects.filter(status__in=unfinished).exists():
                time.sleep(0.2)
            time.sleep(1)
            figures.append(rss_mib(consumer.pid))
            TaskModel.objects.all().delete()
        return figures
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(60)
        connection.close()


if __name__ == "__main__":
    main()
