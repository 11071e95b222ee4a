"""What a task's ``timeout`` costs the consumer's loop with threads: one process claims and runs
no-op tasks with a ``BatchRunner``, as a consumer thread does, a claimed batch of tasks with a
timeout (30 s: armed and disarmed around each body, never fired), then one of the same tasks
without, in pairs whose order alternates (``bench/paired.py``). Prints the time a task with and
without, and the cost as a share (target: under 3 %).

    .venv/bin/python bench/timeout_cost.py [--db sqlite|postgres|mariadb] [--tasks 100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import paired, scratch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="sqlite")
    args = parser.parse_args()
    with scratch.database(args.db, "timeouts", in_memory=True) as name:
        measure(args.tasks, args.db, name)


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
    from firefly_tasks.models import TaskModel, WorkerModel

    call_command("migrate", verbosity=0)
    calls = [() for _ in range(tasks // 2)]
    noop.using(queue="timed", timeout=30).schedule_many(calls)
    noop.using(queue="untimed").schedule_many(calls)
    worker = WorkerModel.objects.create(name="timeout-cost", hostname="here", pid=os.getpid())
    runner = BatchRunner(worker, threading.Event())

    def batch(timed: bool) -> int:
        rows = TaskModel.objects.claim(["timed" if timed else "untimed"], 250, worker.pk)
        return len(runner.run(rows)[0]) if rows else 0

    paired.compare(batch, f"timeouts {vendor}")
    timed_out = TaskModel.objects.exclude(status="completed").count()
    connection.close()
    print(f"timeouts {vendor}: {timed_out} tasks not completed")


if __name__ == "__main__":
    main()
