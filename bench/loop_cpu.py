"""The consumer's own time a task, without its process: seed no-op tasks in a fresh database
(SQLite in /dev/shm when there is one), then claim and run them with a ``BatchRunner`` in this
thread, as a consumer thread does, and print the CPU and wall-clock microseconds a task. No
start-up, no other thread: steadier than ``bench/drain.py`` for comparing two checkouts' hot
paths. CPU is this process's (on SQLite, all the work there is); wall time adds the server's
share on PostgreSQL and MariaDB, one round trip after another.

    .venv/bin/python bench/loop_cpu.py [--tasks 30000] [--db sqlite|postgres|mariadb] [--features]
    .venv/bin/python bench/pairs.py /tmp/before . --scripts loop_cpu --db postgres --pairs 20

``--features`` seeds the tasks of drain.py's "fffeat" system instead of no-ops: ``featured``
(declared with a timeout), each call with a unique key of its own and two tags.

(``--systems`` and ``--runs``, which ``bench/pairs.py`` passes to every script, are accepted
and ignored: there is one system and one run.)
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scratch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=30_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="sqlite")
    parser.add_argument("--features", action="store_true", help="fffeat's tasks, not no-ops")
    parser.add_argument("--systems", help=argparse.SUPPRESS)
    parser.add_argument("--runs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with scratch.database(args.db, "loop", in_memory=True) as name:
        measure(args.tasks, args.db, name, features=args.features)


def measure(tasks: int, vendor: str, name: str, *, features: bool = False) -> None:
    os.environ["FIREFLY_BENCH_DB"] = vendor
    os.environ["FIREFLY_BENCH_DB_NAME"] = name
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.benchapp.tasks import featured, noop
    from firefly_tasks.batches import BatchRunner
    from firefly_tasks.models import TaskModel, WorkerModel

    call_command("migrate", verbosity=0)
    if features:  # as bench/agent_adapters.py's FeaturesAdapter schedules them
        keyed = featured.using(unique_key=lambda i: f"loop-{i}", tags=["bench", "features"])
        keyed.schedule_many([(i,) for i in range(tasks)])
    else:
        noop.schedule_many([() for _ in range(tasks)])
    worker = WorkerModel.objects.create(name="loop", hostname="here", pid=os.getpid())
    runner = BatchRunner(worker, threading.Event())
    began, cpu_began = time.perf_counter(), time.process_time()
    done = 0
    while rows := TaskModel.objects.claim(["default"], 250, worker.pk):
        outcomes, _ = runner.run(rows)
        done += len(outcomes)
    cpu, wall = time.process_time() - cpu_began, time.perf_counter() - began
    connection.close()
    per = 1e6 / max(done, 1)
    what = f"{done} tasks" + (", features" if features else "")
    print(f"loop {vendor}: CPU {cpu * per:.2f} µs/task, wall {wall * per:.2f} µs/task ({what})")


if __name__ == "__main__":
    main()
