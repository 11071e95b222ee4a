"""Figure 6 — a big table: drain speed next to 1,000,000 finished tasks, and the admin.

Per database and system, two fresh databases: one stays empty, the other gets 1,000,000
finished tasks (97 % completed, 2 % failed, 1 % cancelled over the last 7 days, three task
names; Firefly's also get their 990,000 attempt rows), bulk-loaded with COPY on PostgreSQL
and multi-row INSERTs elsewhere, cloned from a row the system itself scheduled and ran, then
VACUUM ANALYZE / ANALYZE. Each run drains 20,000 new no-op tasks in both databases (one
consumer) and compares the rates. Then every page of the system's admin is timed in-process
with Django's test client, logged in as a superuser, with the queries each makes: every
changelist with every choice of every list filter, a search, a deep page, a task's page,
and the extra pages the admin adds (Firefly's dashboard with each filter and each of its
htmx live regions) — all discovered at run time from the admin site.

Firefly runs on every database; the peers that keep finished tasks in their table
(django-firefly-tasks 0.4.0, django-tasks-db) on ``--peer-db`` (PostgreSQL by default).
pgqueuer deletes finished jobs and has no Django admin: n/a.

    python3 bench/bigtable.py [--quick] [--runs 3] [--db ...] [--rows 1000000]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import lib, measure

NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB"}
DRAIN_TARGET = 0.90  # big ÷ empty
PAGE_MS, PAGE_QUERIES = 300.0, 10


def main() -> None:
    p = lib.parser(__doc__.split("\n")[1])
    p.add_argument("--rows", type=int, default=None, help="finished rows (1,000,000)")
    p.add_argument("--peer-db", default="postgres", help="databases where peers run too")
    p.add_argument("--cap", type=float, default=None, help="seconds per drain at most (8)")
    opts = lib.options(p.parse_args())
    rows = opts.extra.rows or (50_000 if opts.quick else 1_000_000)
    n = 2000 if opts.quick else 20_000
    cap = opts.extra.cap or (4 if opts.quick else 8)
    peer_dbs = [v for v in opts.extra.peer_db.split(",") if v]
    drains: dict[tuple[str, str], list[tuple[float, float]]] = {}
    seeds: dict[tuple[str, str], dict[str, Any]] = {}
    pages: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for vendor in opts.vendors:
        for system in opts.systems:
            if system.kind != "django" or vendor not in system.vendors:
                continue
            if system.key != "firefly" and vendor not in peer_dbs:
                continue
            key = (system.key, vendor)
            empty = lib.Database(vendor, "empty")
            big = lib.Database(vendor, "big")
            try:
                measure.prepare(system, empty)
                measure.prepare(system, big)
            except lib.Unavailable:
                empty.drop()
                big.drop()
                continue
            lib.log(f"bigtable: {system.key} on {big.durability()}: seeding {rows:,} rows")
            seeds[key] = lib.agent(system, big, "bigseed", n=rows)
            lib.log(f"  seeded in {seeds[key]['total_seconds']:.0f}s")
            for _ in range(opts.runs):
                a = measure.drain(system, empty, "noop", n, cap=cap)
                b = measure.drain(system, big, "noop", n, cap=cap, reset=False)
                drains.setdefault(key, []).append((a["rate"], b["rate"]))
            empty.drop()
            # A few hundred tasks waiting, as on a live system, for the pages to show.
            lib.agent(system, big, "seed", workload="noop", n=500)
            lib.log(f"  timing admin pages of {system.key} on {vendor}")
            pages[key] = lib.agent(system, big, "dashboard", repeats=opts.runs)["pages"]
            big.drop()
    report = summarize(opts, rows, n, drains, seeds, pages)
    print(report["markdown"])
    lib.save("bigtable", report)


def summarize(
    opts: lib.Options,
    rows: int,
    n: int,
    drains: dict[tuple[str, str], list[tuple[float, float]]],
    seeds: dict[tuple[str, str], dict[str, Any]],
    pages: dict[tuple[str, str], list[dict[str, Any]]],
) -> dict[str, Any]:
    labels = {s.key: s.label for s in lib.SYSTEMS}
    md = lib.header(f"A table with {rows:,} finished tasks", opts)
    md += (
        f"\nDrain {n:,} no-op tasks with one consumer, next to an empty table and next to "
        f"{rows:,} finished tasks (tasks/s, median; ratio per run, then median).\n\n"
    )
    table_rows = []
    figures = []
    for (key, vendor), pairs in drains.items():
        ratio = lib.median(b / a for a, b in pairs if a)
        seed = seeds.get((key, vendor), {})
        table_rows.append(
            [
                labels[key],
                NAMES[vendor],
                f"{lib.fmt(lib.median(a for a, _ in pairs))}/s",
                f"{lib.fmt(lib.median(b for _, b in pairs))}/s",
                f"{ratio:.2f}×",
                f"{seed.get('seed_seconds', float('nan')):.0f} s",
            ]
        )
        if key == "firefly":
            figures.append(
                {
                    "figure": (
                        f"Drain next to {rows:,} finished rows ÷ empty table, {NAMES[vendor]}"
                    ),
                    "target": f"≥ {DRAIN_TARGET:.2f}×",
                    "value": f"{ratio:.2f}×",
                    "verdict": lib.verdict(ratio, DRAIN_TARGET),
                }
            )
    md += lib.table(
        ["system", "database", "empty table", f"{rows:,} finished", "big ÷ empty", "bulk load"],
        table_rows,
    )
    md += "\n"
    for (key, vendor), results in pages.items():
        ok = [r for r in results if r.get("status") == 200]
        worst_ms = max((r["ms"] for r in ok), default=float("nan"))
        worst_q = max((r["queries"] for r in ok), default=0)
        bad = [r for r in results if r.get("status") != 200]
        md += (
            f"\n### Admin pages: {labels[key]}, {NAMES[vendor]}, {rows:,} finished tasks\n\n"
            f"Server time in-process (test client, superuser), median of {opts.runs} after a "
            f"warm-up; queries = the most any repeat made. {len(ok)} pages; slowest "
            f"{worst_ms:.0f} ms; most queries {worst_q}.\n\n"
        )
        md += lib.table(
            ["page", "ms", "queries", ""],
            [
                [
                    r["page"].replace("|", "/"),
                    f"{r['ms']:.0f}" if "ms" in r else "–",
                    str(r.get("queries", "–")),
                    _flag(r, key == "firefly" and vendor == "postgres"),
                ]
                for r in results
            ],
        )
        md += "\n"
        if bad:
            failing = ", ".join(f"{r.get('status')} {r['url']}" for r in bad)
            md += f"\nPages not answering 200: {failing}\n"
        if key == "firefly":
            target = vendor == "postgres"
            figures.append(
                {
                    "figure": f"Admin, slowest of {len(ok)} pages (all filters), {NAMES[vendor]}",
                    "target": f"≤ {PAGE_MS:g} ms" if target else "measured",
                    "value": f"{worst_ms:.0f} ms",
                    "verdict": lib.verdict(worst_ms, PAGE_MS, higher_is_better=False)
                    if target
                    else "reported",
                }
            )
            figures.append(
                {
                    "figure": f"Admin, most queries on a page, {NAMES[vendor]}",
                    "target": f"≤ {PAGE_QUERIES}" if target else "measured",
                    "value": str(worst_q),
                    "verdict": lib.verdict(worst_q, PAGE_QUERIES, higher_is_better=False)
                    if target
                    else "reported",
                }
            )
    return {
        "markdown": md,
        "figures": figures,
        "drains": {f"{k[0]}/{k[1]}": v for k, v in drains.items()},
        "seeds": {f"{k[0]}/{k[1]}": v for k, v in seeds.items()},
        "pages": {f"{k[0]}/{k[1]}": v for k, v in pages.items()},
    }


def _flag(result: dict[str, Any], with_targets: bool) -> str:
    if result.get("status") != 200:
        return f"HTTP {result.get('status', '?')}"
    if not with_targets:
        return ""
    over = []
    if result["ms"] > PAGE_MS:
        over.append(f"> {PAGE_MS:g} ms")
    if result["queries"] > PAGE_QUERIES:
        over.append(f"> {PAGE_QUERIES} queries")
    return ", ".join(over)


if __name__ == "__main__":
    main()
