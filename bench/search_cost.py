"""The task list's unindexed searches (``error:TEXT``, ``args.KEY:VALUE``) next to a big table:
how long the first page of matches takes, with and without the bound of
``FIREFLY_ADMIN_SEARCH_ROWS`` (100,000 newest tasks by default).

Seeds ``--rows`` finished tasks (copied in SQL from one scheduled call, a tenth of them failed
with an error of their own), then times the list page's query, its first 50 matches in id
order, best of three.

    .venv/bin/python bench/search_cost.py [--db postgres|sqlite|mariadb] [--rows 1000000]

(``--systems`` and ``--runs``, which ``bench/pairs.py`` passes to every script, are accepted
and ignored.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scratch

TERMS = ("error:order 4242", "args.0:4242", "args.customer:7")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--systems", help=argparse.SUPPRESS)
    parser.add_argument("--runs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with scratch.database(args.db, "search") as name:
        scratch.set_up(args.db, name)
        seed(args.rows)
        print(f"task list search, {args.db}, {args.rows:,} tasks")
        print("| search | bounded (100,000 newest) | whole table |\n|---|---|---|")
        for term in TERMS:
            bounded, whole = timed(term, 100_000), timed(term, args.rows + 1)
            print(f"| `{term}` | {bounded:.0f} ms | {whole:.0f} ms |")


def seed(rows: int) -> None:
    """``rows`` tasks: the first scheduled for real, the rest copied from it in SQL, each
    with its own argument and every tenth failed with its own error."""
    from django.db import connection

    from bench.benchapp.tasks import spin
    from firefly_tasks.models import TaskModel

    first = spin.schedule(0)
    table = connection.ops.quote_name(TaskModel._meta.db_table)
    columns = [
        field.column
        for field in TaskModel._meta.concrete_fields
        if field.column not in ("id", "params", "status", "error")
    ]
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    params = '\'{"__firefly__":"tuple","v":[[\' || n || \'],{}]}\''
    error = "CASE WHEN n %% 10 = 0 THEN 'ValueError: order ' || n ELSE '' END"
    status = "CASE WHEN n %% 10 = 0 THEN 'failed' ELSE 'completed' END"
    if connection.vendor == "mysql":
        params = 'CONCAT(\'{"__firefly__":"tuple","v":[[\', n, \'],{}]}\')'
        error = "CASE WHEN n %% 10 = 0 THEN CONCAT('ValueError: order ', n) ELSE '' END"
    numbers = (
        f"WITH RECURSIVE numbers(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers "
        f"WHERE n < {rows - 1})"
    )
    if connection.vendor == "postgresql":
        numbers = f"WITH numbers(n) AS (SELECT generate_series(1, {rows - 1}))"
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(f"SET SESSION cte_max_recursion_depth = {rows}")
        cursor.execute(
            f"INSERT INTO {table} ({names}, params, status, error) {numbers} "
            f"SELECT {names}, {params}, {status}, {error} FROM numbers, {table} "
            f"WHERE {table}.id = %s",
            [first.pk],
        )
        if connection.vendor != "mysql":
            cursor.execute("ANALYZE")


def timed(term: str, bound: int) -> float:
    from django.test import override_settings

    from firefly_admin.search import search
    from firefly_tasks.models import TaskModel

    best = float("inf")
    with override_settings(FIREFLY_ADMIN_SEARCH_ROWS=bound):
        for _ in range(3):
            began = time.perf_counter()
            found = search(TaskModel.objects.order_by("-pk"), term)
            assert found is not None
            list(found.values_list("pk", flat=True)[:50])
            best = min(best, time.perf_counter() - began)
    return best * 1000


if __name__ == "__main__":
    main()
