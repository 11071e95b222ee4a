"""How soon a waiter learns that a task finished, and how soon a group's callback starts.

A real ``consume_tasks`` process (``--concurrency 2``) runs, one round after another:

1. **wait_result()**: a ``stamp`` task (it returns the moment it ran) is scheduled and waited
   for with ``row.wait_result()``; the figure is from the task's stamp to the moment
   ``wait_result()`` returned (it includes the consumer's group commit, up to
   ``FIREFLY_GROUP_COMMIT_WINDOW``). PostgreSQL wakes the waiter with LISTEN/NOTIFY; the other
   databases, and PostgreSQL with ``--poll``, poll.
2. **Callback start**: a group of ``--members`` ``stamp`` tasks then a callback that stamps its
   own start; the figure is from the last member's stamp to the callback's.

One clock, one machine.

    .venv/bin/python bench/wait_latency.py [--db sqlite|postgres|mariadb] [--rounds 30]
        [--members 10] [--poll]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scratch

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--poll", action="store_true", help="PostgreSQL: poll, no LISTEN")
    args = parser.parse_args()
    with scratch.database(args.db, "wait") as name:
        measure(args, name)


def measure(args: argparse.Namespace, name: str) -> None:
    scratch.set_up(args.db, name, {"FIREFLY_LISTEN_NOTIFY": not args.poll})
    from django.db import connection

    from bench.benchapp.tasks import stamp, stamp_after
    from firefly_tasks import group
    from firefly_tasks.models import TaskModel

    process = subprocess.Popen(
        [sys.executable, "-m", "django", "consume_tasks", "--concurrency", "2"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    woken, started = [], []
    try:
        stamp.schedule().wait_result(timeout=60)  # the consumer is up
        for _ in range(args.rounds):
            row = stamp.schedule()
            ran = row.wait_result(timeout=60)
            woken.append(time.time() - ran)
        for _ in range(args.rounds):
            members, callback = (
                group(stamp.si() for _ in range(args.members)).then(stamp_after.s()).schedule()
            )
            began = callback.wait_result(timeout=60)
            ends = TaskModel.objects.filter(pk__in=[m.pk for m in members])
            last = max(row.returned for row in ends)
            started.append(began - last)
    finally:
        process.terminate()
        process.wait(30)
        connection.close()
    how = "polling" if args.poll or args.db != "postgres" else "LISTEN/NOTIFY"
    for label, values in (("wait_result", woken), ("callback start", started)):
        ms = sorted(v * 1000 for v in values)
        print(
            f"{label} {args.db} ({how}): median {statistics.median(ms):.1f} ms, "
            f"p95 {ms[int(len(ms) * 0.95) - 1]:.1f} ms, max {ms[-1]:.1f} ms over {len(ms)} rounds"
        )


if __name__ == "__main__":
    main()
