"""The consumer loop's cost a task in CPU instructions, for two checkouts: counted by valgrind's
callgrind, so the figure does not move with the machine's load (a 2-core machine's timings
spread by ±10 % run to run; these by under 0.2 %).

Each checkout runs the loop of ``bench/loop_cpu.py`` (claim batches of 250 no-op tasks and run
them with a ``BatchRunner`` in one thread, SQLite on disk, after ANALYZE) twice, for ``--small``
and ``--large`` tasks, the tasks copied in SQL from one scheduled call; the difference of the
two totals over the difference of the counts is the loop's instructions a task, start-up and
seeding cancelled out. The group-commit window is set to 1000 s and hashing fixed, so that
nothing timed changes what runs: a group closes at its batch's end. The four runs go in
parallel (the counts do not mind). Python and SQLite's own work are counted, the kernel's
(I/O) is not.

    git worktree add /tmp/before REV && ln -s "$PWD/.venv" /tmp/before/.venv
    .venv/bin/python bench/loop_instructions.py /tmp/before . [--small 1000 --large 5000]

Needs valgrind (Debian's package). About three minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

COLLECTED = re.compile(r"Collected : (\d+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_loop(Path(args.child[0]), int(args.child[1]))
        return
    runs = [(tree, n) for tree in (args.before, args.after) for n in (args.small, args.large)]
    counts: dict[tuple[Path, int], int] = {}
    threads = [threading.Thread(target=lambda r=r: counts.update({r: count(*r)})) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    span = args.large - args.small
    per = {
        tree: (counts[tree, args.large] - counts[tree, args.small]) / span
        for tree in (args.before, args.after)
    }
    for tree in (args.before, args.after):
        print(f"{tree}: {per[tree]:,.0f} instructions a task")
    print(f"after ÷ before: {per[args.after] / per[args.before]:.3f}")


def count(tree: Path, tasks: int) -> int:
    """Instructions of a whole run of ``tree``'s loop over ``tasks`` tasks."""
    with tempfile.TemporaryDirectory(prefix="ffcg-") as folder:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={folder}/callgrind.out",
            sys.executable,
            str(Path(__file__).resolve()),
            "-",
            "-",
            "--child",
            str(tree.resolve()),
            str(tasks),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    found = COLLECTED.search(done.stderr)
    if found is None:
        raise SystemExit(f"no count from valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def run_loop(tree: Path, tasks: int) -> None:
    """In the child, under valgrind: ``tree``'s loop over ``tasks`` tasks."""
    sys.path.insert(0, str(tree))
    os.chdir(tree)
    from bench import scratch

    with scratch.database("sqlite", "instructions") as name:
        os.environ.update(FIREFLY_BENCH_DB="sqlite", FIREFLY_BENCH_DB_NAME=name)
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
        import django
        from django.test.utils import override_settings

        django.setup()
        override_settings(FIREFLY_GROUP_COMMIT_WINDOW=1000.0).enable()  # nothing timed
        from django.core.management import call_command
        from django.db import connection

        from bench.benchapp.tasks import noop
        from firefly_tasks.batches import BatchRunner
        from firefly_tasks.models import TaskModel, WorkerModel

        call_command("migrate", verbosity=0)
        noop.schedule()
        table = connection.ops.quote_name(TaskModel._meta.db_table)
        fields = [f.column for f in TaskModel._meta.concrete_fields if not f.primary_key]
        columns = ", ".join(connection.ops.quote_name(c) for c in fields)
        with connection.cursor() as cursor:
            cursor.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s)"
                f" INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}, n",
                [tasks - 1],
            )
            cursor.execute("ANALYZE")
        worker = WorkerModel.objects.create(name="loop", hostname="here", pid=os.getpid())
        runner = BatchRunner(worker, threading.Event())
        done = 0
        while rows := TaskModel.objects.claim(["default"], 250, worker.pk):
            done += len(runner.run(rows)[0])
        assert done == tasks, (done, tasks)


if __name__ == "__main__":
    main()
