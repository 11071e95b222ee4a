"""The dashboard's charts page against a week of rollups: how long ``charts.chart_page`` (its
two queries and the folding) takes for each range, for all queues, one queue and one task.

The rollups are what a busy deployment writes: every minute of ``--days`` days, ``--queues``
queues of ``--tasks`` tasks each, ``--writers`` consumer threads each writing a row per minute,
queue and task (403,200 rows with the defaults). Best of three calls.

    .venv/bin/python bench/charts_page.py [--db sqlite|postgres|mariadb] [--days 7]

(``--systems`` and ``--runs``, which ``bench/pairs.py`` passes to every script, are accepted
and ignored.)
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scratch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="sqlite")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--queues", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--systems", help=argparse.SUPPRESS)
    parser.add_argument("--runs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with scratch.database(args.db, "charts") as name:
        scratch.set_up(args.db, name)
        rows = seed(args.days, args.queues, args.tasks, args.writers)
        print(f"charts page, {args.db}, {rows:,} rollup rows")
        print("| range | all queues | one queue | one task |\n|---|---|---|---|")
        for key in ("1h", "24h", "7d"):
            cells = [
                timed(key, queue, task) for queue, task in (("", ""), ("q1", ""), ("q1", "t2"))
            ]
            print(f"| {key} | " + " | ".join(f"{ms:.0f} ms" for ms in cells) + " |")


def seed(days: int, queues: int, tasks: int, writers: int) -> int:
    from django.db import connection
    from django.utils import timezone

    from firefly_tasks.models import TaskRollup

    now = timezone.now().replace(second=0, microsecond=0)
    batch: list[TaskRollup] = []
    for minutes in range(days * 1440):
        minute = now - datetime.timedelta(minutes=minutes)
        for q in range(queues):
            for t in range(tasks):
                for writer in range(writers):
                    row = TaskRollup(minute=minute, worker_id=writer, slot=0, queue=f"q{q}")
                    row.func_name, row.completed, row.failed = f"t{t}", 10, 1
                    row.run_b05, row.run_b09, row.wait_b03 = 8, 2, 10  # type: ignore[attr-defined]
                    batch.append(row)
        if len(batch) >= 20_000:
            TaskRollup.objects.bulk_create(batch)
            batch.clear()
    TaskRollup.objects.bulk_create(batch)
    if connection.vendor != "mysql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return TaskRollup.objects.count()


def timed(key: str, queue: str, task: str) -> float:
    from django.utils import timezone

    from firefly_admin.charts import RANGES, chart_page

    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        chart_page(timezone.now(), RANGES[key], queue, task)
        best = min(best, time.perf_counter() - began)
    return best * 1000


if __name__ == "__main__":
    main()
