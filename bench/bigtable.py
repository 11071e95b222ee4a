"""Figure 6 — a big table: drain speed next to 10,000,000 finished tasks, the admin, and a prune.

Per database and system, two databases: one stays empty, the other holds the big table:
``--rows`` finished tasks (10,000,000 on PostgreSQL, 1,000,000 on SQLite and MariaDB; 97 %
completed, 2 % failed, 1 % cancelled, three task names; a tenth of them finished in the last
hour before the table was built, the rest over the 7 days before; Firefly's also get their
attempt rows and the per-minute rollups four consumer threads would have written), generated
by the database from a row the system itself scheduled and ran, then VACUUM ANALYZE /
ANALYZE. The big table is built once and cached between runs (``bench/bigcache.py``): on
PostgreSQL a template database each run copies (``CREATE DATABASE ... TEMPLATE``), on SQLite a
file under ``bench/.cache/``; on MariaDB it is seeded anew each run. Each run drains 20,000 new
no-op tasks in both databases (one consumer) and compares the rates. Then every page of the
system's admin is timed in-process with Django's test client, logged in as a superuser, with
the queries each makes: every changelist with every choice of every list filter, a search, a
deep page, a task's page, and the extra pages the admin adds (Firefly's dashboard with each
filter and each of its htmx live regions) — all discovered at run time from the admin site.
Last, on PostgreSQL, ``prune_tasks`` deletes the ``--prune`` oldest rows (1,000,000) while a
consumer runs a task scheduled every 10 ms: the longest schedule → start latency during the
prune, against the same before it (``bench/prune_latency.py``).

Firefly runs on every database; the peers that keep finished tasks in their table
(django-firefly-tasks 0.4.0, django-tasks-db) on ``--peer-db`` (PostgreSQL by default).
pgqueuer deletes finished jobs and has no Django admin: n/a. Firefly with its queue on a
database of its own (``ffqueue``) runs only when ``--systems`` names it: its big table is not
cached, and seeding it would cost the full run (``run_all.py``) four minutes for a figure the
targets do not ask for.

    python3 bench/bigtable.py [--quick] [--runs 3] [--db ...] [--rows N] [--prune 1000000]
                              [--rebuild] [--drop-cache] [--max-age 24]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import measure, prune_latency
from bench.bigcache import drop_cache, open_big
from bench.databases import Database
from bench.log import log
from bench.options import Options, options, parser
from bench.processes import run_json
from bench.reports import command, header, save
from bench.systems import FFQUEUE, SYSTEMS, System, Unavailable
from bench.tables import fmt, median, table, verdict

NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB"}
DRAIN_TARGET = 0.90  # big ÷ empty
# The slowest page may take this long (server time), by database, with at most PAGE_QUERIES.
PAGE_MS = {"postgres": 300.0, "sqlite": 500.0, "mariadb": 500.0}
PAGE_QUERIES = 10
ROWS = {"postgres": 10_000_000, "sqlite": 1_000_000, "mariadb": 1_000_000}  # issue #20
QUICK_ROWS = 50_000
PRUNE_ROWS, QUICK_PRUNE = 1_000_000, 10_000
PAGES_TIMEOUT = 7200.0  # seconds: every page, repeated, next to ten million rows


def main() -> None:
    p = parser(__doc__.split("\n")[1])
    defaults = p.get_default("systems").split(",")
    p.set_defaults(systems=",".join(k for k in defaults if k != FFQUEUE.key))
    p.add_argument(
        "--rows",
        type=int,
        default=None,
        help="finished rows (10,000,000 on PostgreSQL, 1,000,000 elsewhere)",
    )
    p.add_argument(
        "--recent", type=int, default=None, help="of which finished in the last hour (a tenth)"
    )
    p.add_argument("--peer-db", default="postgres", help="databases where peers run too")
    p.add_argument("--cap", type=float, default=None, help="seconds per drain at most (8)")
    p.add_argument(
        "--prune",
        type=int,
        default=None,
        help="oldest rows prune_tasks deletes, PostgreSQL (1,000,000); 0: no prune",
    )
    p.add_argument("--prune-cap", type=float, default=1800, help="seconds the prune may take")
    p.add_argument("--rebuild", action="store_true", help="build the cached big tables anew")
    p.add_argument(
        "--max-age",
        type=float,
        default=24,
        help="hours a cached big table is used before it is rebuilt (0: any age)",
    )
    p.add_argument("--drop-cache", action="store_true",
                   help="drop the cached big tables of --db, and exit")  # fmt: skip
    opts = options(p.parse_args())
    if opts.extra.drop_cache:
        dropped = drop_cache(opts.vendors)
        log(f"dropped {len(dropped)} cached big table(s)" + "".join(f"\n  {d}" for d in dropped))
        return
    n = 2000 if opts.quick else 20_000
    cap = opts.extra.cap or (4 if opts.quick else 8)
    prune_rows = opts.extra.prune
    if prune_rows is None:
        prune_rows = QUICK_PRUNE if opts.quick else PRUNE_ROWS
    peer_dbs = [v for v in opts.extra.peer_db.split(",") if v]
    drains: dict[tuple[str, str], list[tuple[float, float]]] = {}
    tables: dict[tuple[str, str], dict[str, Any]] = {}
    pages: dict[tuple[str, str], list[dict[str, Any]]] = {}
    prunes: dict[tuple[str, str], dict[str, Any]] = {}
    for vendor in opts.vendors:
        rows = rows_for(opts, vendor)
        recent = opts.extra.recent if opts.extra.recent is not None else rows // 10
        for system in opts.systems:
            if system.kind != "django" or vendor not in system.vendors:
                continue
            if system.key != "firefly" and vendor not in peer_dbs:
                continue
            key = (system.key, vendor)
            empty = Database(vendor, "empty")
            try:
                measure.prepare(system, empty)
                log(f"bigtable: {system.key} on {empty.durability()}: {rows:,} finished rows")
                big, tables[key] = open_big(system, vendor, rows, recent,
                                            rebuild=opts.extra.rebuild,
                                            max_age=opts.extra.max_age)  # fmt: skip
            except Unavailable:
                empty.drop()
                continue
            measure.prepare(system, big)
            for _ in range(opts.runs):
                a = measure.drain(system, empty, "noop", n, cap=cap)
                b = measure.drain(system, big, "noop", n, cap=cap, reset=False)
                drains.setdefault(key, []).append((a["rate"], b["rate"]))
            empty.drop()
            # A few hundred tasks waiting, as on a live system, for the pages to show.
            measure.seed(system, big, "noop", 500)
            log(f"  timing admin pages of {system.key} on {vendor}")
            pages[key] = long_agent(system, big, "dashboard", repeats=opts.runs)["pages"]
            if system.key == "firefly" and vendor == "postgres" and prune_rows > 0:
                prunes[key] = prune_latency.run(system, big, tables[key]["seed"], prune_rows,
                                                cap=opts.extra.prune_cap)  # fmt: skip
            big.drop()
    report = summarize(opts, n, drains, tables, pages, prunes)
    print(report["markdown"])
    save("bigtable", report)


def rows_for(opts: Options, vendor: str) -> int:
    """The finished rows of the big table on ``vendor``."""
    if opts.extra.rows:
        return int(opts.extra.rows)
    return QUICK_ROWS if opts.quick else ROWS[vendor]


def long_agent(system: System, db: Database, name: str, **args: Any) -> Any:
    """An agent command that may run long (the agent's own timeout is 30 minutes)."""
    import json

    cmd = [system.python, "-m", system.agent_module, name, json.dumps(args)]
    return run_json(cmd, system.env(db), f"{system.key}-{db.vendor}", timeout=PAGES_TIMEOUT)


def again(opts: Options, vendor: str, *args: str) -> str:
    """The command that measures a figure of Firefly on ``vendor`` again."""
    rows = ["--rows", str(opts.extra.rows)] if opts.extra.rows else []
    return command("bigtable", opts, "--db", vendor, "--systems", "firefly", *rows, *args)


def origin(info: dict[str, Any]) -> str:
    """Where a run's big table came from."""
    if not info.get("cached"):
        return f"seeded in {info['seed']['total_seconds']:.0f} s"
    copied = f"copied in {info['copy_seconds']:.0f} s"
    if info["built_now"]:
        return f"built in {info['build_seconds']:.0f} s, {copied}"
    hours = info["age_seconds"] / 3600
    return f"cached ({hours:.1f} h old; built in {info['build_seconds']:.0f} s), {copied}"


def summarize(
    opts: Options,
    n: int,
    drains: dict[tuple[str, str], list[tuple[float, float]]],
    tables: dict[tuple[str, str], dict[str, Any]],
    pages: dict[tuple[str, str], list[dict[str, Any]]],
    prunes: dict[tuple[str, str], dict[str, Any]],
) -> dict[str, Any]:
    labels = {s.key: s.label for s in SYSTEMS}
    sizes = ", ".join(f"{rows_for(opts, v):,} on {NAMES[v]}" for v in opts.vendors)
    md = header(f"A table of finished tasks ({sizes})", opts)
    md += (
        f"\nDrain {n:,} no-op tasks with one consumer, next to an empty table and next to "
        "the big table (tasks/s, median; ratio per run, then median). The big table is built "
        "once and cached (a template database on PostgreSQL, a file on SQLite; seeded each "
        "run on MariaDB); its rows' times are those of its build.\n\n"
    )
    table_rows = []
    figures = []
    for (key, vendor), pairs in drains.items():
        ratio = median(b / a for a, b in pairs if a)
        rows = rows_for(opts, vendor)
        table_rows.append(
            [
                labels[key],
                NAMES[vendor],
                f"{fmt(median(a for a, _ in pairs))}/s",
                f"{fmt(median(b for _, b in pairs))}/s",
                f"{rows:,}",
                f"{ratio:.2f}×",
                origin(tables.get((key, vendor), {"seed": {"total_seconds": float("nan")}})),
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
                    "verdict": verdict(ratio, DRAIN_TARGET),
                    "command": again(opts, vendor, "--prune", "0"),
                }
            )
    md += table(
        ["system", "database", "empty table", "big table", "finished rows", "big ÷ empty",
         "big table from"],
        table_rows,
    )  # fmt: skip
    md += "\n"
    for (key, vendor), results in pages.items():
        ok = [r for r in results if r.get("status") == 200]
        worst_ms = max((r["ms"] for r in ok), default=float("nan"))
        worst_q = max((r["queries"] for r in ok), default=0)
        bad = [r for r in results if r.get("status") != 200]
        md += (
            f"\n### Admin pages: {labels[key]}, {NAMES[vendor]}, "
            f"{rows_for(opts, vendor):,} finished tasks\n\n"
            f"Server time in-process (test client, superuser), median of {opts.runs} after a "
            f"warm-up; queries = the most any repeat made. {len(ok)} pages; slowest "
            f"{worst_ms:.0f} ms; most queries {worst_q}.\n\n"
        )
        md += table(
            ["page", "ms", "queries", ""],
            [
                [
                    r["page"].replace("|", "/"),
                    f"{r['ms']:.0f}" if "ms" in r else "–",
                    str(r.get("queries", "–")),
                    _flag(r, PAGE_MS[vendor] if key == "firefly" else None),
                ]
                for r in results
            ],
        )
        md += "\n"
        if bad:
            failing = ", ".join(f"{r.get('status')} {r['url']}" for r in bad)
            md += f"\nPages not answering 200: {failing}\n"
        if key == "firefly":
            limit = PAGE_MS[vendor]
            figures.append(
                {
                    "figure": f"Admin, slowest of {len(ok)} pages (all filters), {NAMES[vendor]}",
                    "target": f"≤ {limit:g} ms",
                    "value": f"{worst_ms:.0f} ms",
                    "verdict": verdict(worst_ms, limit, higher_is_better=False),
                    "command": again(opts, vendor, "--prune", "0"),
                }
            )
            figures.append(
                {
                    "figure": f"Admin, most queries on a page, {NAMES[vendor]}",
                    "target": f"≤ {PAGE_QUERIES}",
                    "value": str(worst_q),
                    "verdict": verdict(worst_q, PAGE_QUERIES, higher_is_better=False),
                    "command": again(opts, vendor, "--prune", "0"),
                }
            )
    for (_, vendor), result in prunes.items():
        md += prune_section(result)
        figures.append(
            prune_latency.figure(result, again(opts, vendor, "--prune", str(result["rows"])))
        )
    return {
        "markdown": md,
        "figures": figures,
        "drains": {f"{k[0]}/{k[1]}": v for k, v in drains.items()},
        "tables": {f"{k[0]}/{k[1]}": v for k, v in tables.items()},
        "pages": {f"{k[0]}/{k[1]}": v for k, v in pages.items()},
        "prunes": {f"{k[0]}/{k[1]}": v for k, v in prunes.items()},
    }


def prune_section(result: dict[str, Any]) -> str:
    base, during = result["baseline"], result["during"]
    md = (
        f"\n### prune_tasks of the {result['rows']:,} oldest rows, Firefly, PostgreSQL\n\n"
        f"`manage.py prune_tasks --days {result['days']:.4f}` (chunks of 1,000) while one "
        f"consumer runs a `stamp` task scheduled every {result['interval_ms']:g} ms: "
        f"{result['deleted'] or 0:,} rows deleted in {result['prune_seconds']:.1f} s"
        f"{' (capped: stopped)' if result['capped'] else ''}. Latency from the commit of "
        "`schedule()` to the task's start, ms; during = tasks waiting at any moment of the "
        "prune.\n\n"
    )
    md += table(
        ["window", "tasks", "p50", "p99", "max", "longest schedule()"],
        [
            ["before the prune", str(base["n"]), f"{base['p50']:.1f}", f"{base['p99']:.1f}",
             f"{base['max']:.1f}", ""],
            ["during the prune", str(during["n"]), f"{during['p50']:.1f}",
             f"{during['p99']:.1f}", f"{during['max']:.1f}",
             f"{result['schedule_max_ms']:.1f} ms"],
        ],
    )  # fmt: skip
    if result["missing"]:
        md += f"\n\n{result['missing']} tasks of the prune's window had not started 30 s after."
    return md + "\n"


def _flag(result: dict[str, Any], limit_ms: float | None) -> str:
    if result.get("status") != 200:
        return f"HTTP {result.get('status', '?')}"
    if limit_ms is None:
        return ""
    over = []
    if result["ms"] > limit_ms:
        over.append(f"> {limit_ms:g} ms")
    if result["queries"] > PAGE_QUERIES:
        over.append(f"> {PAGE_QUERIES} queries")
    return ", ".join(over)


if __name__ == "__main__":
    main()
