"""The consumer's CPU time a task, without its process: seed no-op tasks in a fresh SQLite file
(in /dev/shm when there is one), then claim and run them with a ``BatchRunner`` in this thread,
as a consumer thread does, and print the CPU microseconds a task. No start-up, no other
thread, no disk: steadier than ``bench/drain.py`` for comparing two checkouts' hot paths
(run it from each, alternating).

    .venv/bin/python bench/loop_cpu.py [--tasks 30000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=30_000)
    args = parser.parse_args()
    where = "/dev/shm" if os.path.isdir("/dev/shm") else None
    folder = tempfile.mkdtemp(prefix="ffloop-", dir=where)
    try:
        measure(args.tasks, os.path.join(folder, "loop.sqlite3"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(tasks: int, path: str) -> None:
    os.environ["FIREFLY_BENCH_DB"] = "sqlite"
    os.environ["FIREFLY_BENCH_DB_NAME"] = path
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()
    from django.core.management import call_command

    from bench.benchapp.tasks import noop
    from firefly_tasks.batches import BatchRunner
    from firefly_tasks.models import TaskModel, WorkerModel

    call_command("migrate", verbosity=0)
    noop.schedule_many([() for _ in range(tasks)])
    worker = WorkerModel.objects.create(name="loop", hostname="here", pid=os.getpid())
    runner = BatchRunner(worker, threading.Event())
    began = time.process_time()
    done = 0
    while rows := TaskModel.objects.claim(["default"], 250, worker.pk):
        outcomes, _ = runner.run(rows)
        done += len(outcomes)
    cpu = time.process_time() - began
    print(f"{cpu / max(done, 1) * 1e6:.2f} µs/task ({done} tasks)")


if __name__ == "__main__":
    main()
