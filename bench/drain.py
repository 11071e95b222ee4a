"""Figure 1 — drain 20,000 no-op tasks with one consumer process.

For each database, a fresh database; for each run and each system: empty the queue, seed
20,000 no-op tasks, ANALYZE, start one consumer (Firefly: ``consume_tasks --burst``), stop
when the queue is empty or after ``--cap`` seconds (slow systems are measured over the first
``--cap`` seconds of the same drain), and compute throughput from the completion times the
system recorded. Consumers that record no completion time and never exit by themselves
(django-q2's ``qcluster``, Huey's and Celery's workers) are followed by their agent's
``watch``, which samples the system's own count of queued tasks; the throughput is then the
tasks gone between its first sample below N and its first sample at 0, over that time.
Medians over the runs; runs of the systems are interleaved, and a ratio of two systems on one
database is the median of their per-run ratios.

``fffeat`` ("Firefly, features on", drain.py only, in its default ``--systems`` next to
``firefly``): the same consumer running ten schedules that tick every second, over no-op tasks
declared with a timeout and each scheduled with a unique key of its own and two tags.
``ffserial`` (also drain.py only and in its default, PostgreSQL and MariaDB): the same consumer
with ``FIREFLY_CLAIM_AHEAD = False``, each thread claiming its next batch only once it has run
one (claims ahead are on by default; SQLite never claims ahead).

Targets (issue #20): on PostgreSQL, Firefly at least 1.3 times pgqueuer (and 10,000/s, the
moonshot, reported); SQLite 15,000/s; MariaDB 6,000/s; Firefly on PostgreSQL at least level with
Celery+Redis per process (at its defaults; tuned, reported); features on at least 0.9 times the
plain drain on each database. Each figure of the report names the command that measures it.

    python3 bench/drain.py [--quick] [--runs 3] [--db postgres,sqlite,mariadb] [--cap 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import measure
from bench.databases import REDIS, Database
from bench.log import log
from bench.options import Options, options, parser, stores
from bench.reports import header, save
from bench.systems import DRAIN_ONLY, Unavailable
from bench.tables import fmt, median, table, verdict

# Issue #20's targets for this drain.
PGQ_RATIO = 1.3  # PostgreSQL: Firefly ÷ pgqueuer, the median of the per-run ratios
MOONSHOT = 10_000  # PostgreSQL, tasks/s: reported
RATE_TARGETS = {"sqlite": 15_000, "mariadb": 6_000}  # tasks/s
CELERY_RATIO = 1.0  # Firefly on PostgreSQL ÷ Celery+Redis at its defaults, per process
FEATURES_RATIO = 0.9  # features on ÷ plain, on each database
NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB", "redis": "Redis"}


def main() -> None:
    p = parser(__doc__.split("\n")[1])
    p.set_defaults(systems=with_drain_only(p.get_default("systems")))
    p.add_argument("--tasks", type=int, default=None, help="tasks to drain (default 20,000)")
    p.add_argument("--cap", type=float, default=None, help="seconds per run at most (10)")
    opts = drain_options(p.parse_args())
    n = opts.extra.tasks or (2000 if opts.quick else 20_000)
    cap = opts.extra.cap or (5 if opts.quick else 10)
    report = run(opts, n, cap)
    print(report["markdown"])
    save("drain", report)


def with_drain_only(default: str) -> str:
    """The shared default ``--systems`` with ``fffeat`` next to ``firefly``."""
    keys = [k for k in default.split(",") if k]
    at = keys.index("firefly") + 1 if "firefly" in keys else len(keys)
    return ",".join([*keys[:at], *(s.key for s in DRAIN_ONLY), *keys[at:]])


def drain_options(args: argparse.Namespace) -> Options:
    """The shared options, with the systems of drain.py alone (``DRAIN_ONLY``) accepted in
    ``--systems`` too, in the order given."""
    keys = [k for k in args.systems.split(",") if k]
    own = {s.key: s for s in DRAIN_ONLY}
    args.systems = ",".join(k for k in keys if k not in own)
    opts = options(args)
    args.systems = ",".join(keys)
    by_key = {s.key: s for s in opts.systems} | own
    opts.systems = [by_key[k] for k in keys]
    return opts


def run(opts: Options, n: int, cap: float) -> dict[str, Any]:
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    unavailable: dict[tuple[str, str], str] = {}
    durability = {}
    for vendor in stores(opts):
        db = Database(vendor, "drain")
        durability[vendor] = db.durability()
        log(f"drain on {durability[vendor]}")
        for _run in range(opts.runs):
            for system in opts.systems:
                key = (system.key, vendor)
                if key in unavailable:
                    continue
                try:
                    result = measure.drain(system, db, "noop", n, cap=cap)
                except Unavailable as exc:
                    unavailable[key] = str(exc)
                    continue
                runs.setdefault(key, []).append(result)
        db.drop()
    return summarize(opts, runs, durability, n, cap)


Runs = dict[tuple[str, str], list[dict[str, Any]]]


def summarize(
    opts: Options, runs: Runs, durability: dict[str, str], n: int, cap: float
) -> dict[str, Any]:
    rates = {k: median(r["rate"] for r in v) for k, v in runs.items()}
    done = {k: median(r["done"] for r in v) for k, v in runs.items()}
    vendors = stores(opts)
    rows = []
    for system in opts.systems:
        row = [system.label]
        for vendor in vendors:
            key = (system.key, vendor)
            if key not in rates:
                row.append("n/a")
                continue
            cell = f"{fmt(rates[key])}/s"
            if done[key] < n:
                cell += f" ({fmt(done[key])} of {fmt(n)} in {cap:g}s)"
            row.append(cell)
        rows.append(row)
    ratio_rows = []
    variants = {s.key for s in DRAIN_ONLY}
    for system in opts.systems:
        if system.key == "firefly" or system.key in variants:
            continue
        row = [f"Firefly ÷ {system.label}"]
        for vendor in vendors:
            row.append(fmt_ratio(paired(runs, ("firefly", vendor), (system.key, vendor))))
        ratio_rows.append(row)
    labels = {s.key: s.label for s in opts.systems}
    for key in (k for k in labels if k in variants):
        row = [f"{labels[key]} ÷ Firefly"]
        for vendor in vendors:
            row.append(fmt_ratio(paired(runs, (key, vendor), ("firefly", vendor))))
        ratio_rows.append(row)
    pg_rows = []
    for system in opts.systems:
        per = [r.get("per_task") for r in runs.get((system.key, "postgres"), [])]
        per = [p for p in per if p]
        if not per:
            continue
        pg_rows.append(
            [system.label]
            + [
                f"{median(p[k] for p in per):.3f}"
                for k in ("commits", "inserted", "updated", "deleted", "fetched", "returned")
            ]
        )
    figures = targets(opts, runs, rates, n)
    md = header(f"Drain {n:,} no-op tasks with one consumer process", opts)
    md += "\n" + "\n".join(f"- {NAMES[v]}: {d}" for v, d in durability.items()) + "\n\n"
    md += "Tasks/s, median of runs (completions after the first ÷ time from first to last "
    md += f"completion; systems that need more than {cap:g}s are measured over the first "
    md += f"{cap:g}s).\n\n"
    md += table(["system", *(NAMES[v] for v in vendors)], rows) + "\n\n"
    if "fffeat" in labels:
        md += f"{labels['fffeat']}: Firefly's consumer with ten schedules ticking every second "
        md += "(its scheduler thread enqueues ten no-op tasks a second, counted in its drain), "
        md += "over no-op tasks declared with `timeout=60` and each scheduled with a unique "
        md += "key of its own and two tags.\n\n"
    if "ffserial" in labels:
        md += f"{labels['ffserial']}: the same consumer without claims sent ahead (on by "
        md += "default, each thread claiming its next batch while it runs one; PostgreSQL "
        md += "and MariaDB: SQLite never claims ahead, so there the two are the same).\n\n"
    if ratio_rows:
        md += "Ratios measured in the same run (median of the per-run ratios: the systems "
        md += "drain one after the other in each run):\n\n"
        md += table(["ratio", *(NAMES[v] for v in vendors)], ratio_rows) + "\n\n"
    across = [f for f in figures if f.get("across")]
    if across:
        md += "Across columns (Celery keeps its queue in Redis; ratio of the medians):\n\n"
        md += "".join(f"- {f['figure']}: {f['value']}\n" for f in across) + "\n"
    if pg_rows:
        md += "PostgreSQL work per task (pg_stat_database deltas ÷ tasks done, median):\n\n"
        md += table(
            ["system", "commits", "rows inserted", "rows updated", "rows deleted",
             "rows fetched", "rows returned"],
            pg_rows,
        )  # fmt: skip
        md += "\n\n"
    if figures:
        md += "Targets (issue #20):\n\n"
        md += table(
            ["figure", "target", "Firefly", "verdict", "command"],
            [[f["figure"], f["target"], f["value"], f["verdict"], f"`{f['command']}`"]
             for f in figures],
        )  # fmt: skip
        md += "\n"
    for figure in figures:
        figure.pop("across", None)
    return {
        "markdown": md,
        "figures": figures,
        "rates": {f"{k[0]}/{k[1]}": v for k, v in rates.items()},
        "runs": {f"{k[0]}/{k[1]}": v for k, v in runs.items()},
    }


def measured(value: float | None) -> bool:
    return value is not None and value == value and value > 0


def paired(runs: Runs, a: tuple[str, str], b: tuple[str, str]) -> float | None:
    """The median of ``a``'s rate ÷ ``b``'s, run by run (a run drains every system of a
    database one after the other, so the machine's drift hits both alike); ``None`` when
    either was not measured."""
    ratios = [
        x["rate"] / y["rate"]
        for x, y in zip(runs.get(a, []), runs.get(b, []), strict=False)
        if measured(x["rate"]) and measured(y["rate"])
    ]
    return median(ratios) if ratios else None


def fmt_ratio(value: float | None) -> str:
    return f"{value:.2f}×" if value is not None else "n/a"


def targets(
    opts: Options, runs: Runs, rates: dict[tuple[str, str], float], n: int
) -> list[dict[str, Any]]:
    """Issue #20's figures of this run, each with the command that measures it again."""
    labels = {s.key: s.label for s in opts.systems}
    drain = f"Drain {fmt(n)} no-op tasks, 1 consumer"
    figures = []

    def add(figure: str, target: str, value: str, result: str, command_of: tuple[str, str],
            across: bool = False) -> None:  # fmt: skip
        vendor, systems = command_of
        figures.append({"figure": figure, "target": target, "value": value, "verdict": result,
                        "command": command(opts, vendor, systems), "across": across})  # fmt: skip

    def rate(key: tuple[str, str]) -> str:
        return f"{fmt(rates.get(key))}/s"

    def ratio(value: float | None, a: tuple[str, str], b: tuple[str, str]) -> str:
        if value is None:
            return "n/a"
        return f"{value:.2f}× ({fmt(rates.get(a))} vs {fmt(rates.get(b))}/s)"

    if "firefly" in labels:
        for vendor in opts.vendors:
            ff = ("firefly", vendor)
            if vendor == "postgres" and "pgq" in labels:
                pgq = ("pgq", vendor)
                value = paired(runs, ff, pgq)
                add(
                    f"{drain}, PostgreSQL: Firefly ÷ {labels['pgq']}",
                    f"≥ {PGQ_RATIO}×",
                    ratio(value, ff, pgq),
                    verdict(value, PGQ_RATIO),
                    (vendor, "firefly,pgq"),
                )
            if vendor == "postgres":
                moonshot = f"≥ {MOONSHOT:,}/s"
                add(f"{drain}, PostgreSQL (moonshot)", moonshot, rate(ff), "reported",
                    (vendor, "firefly"))  # fmt: skip
            else:
                target = RATE_TARGETS[vendor]
                add(f"{drain}, {NAMES[vendor]}", f"≥ {target:,}/s", rate(ff),
                    verdict(rates.get(ff), target), (vendor, "firefly"))  # fmt: skip
        celery = [k for k in ("celery", "celerythreads") if k in labels]
        base = firefly_database(opts, rates)
        if celery and base:
            ff = ("firefly", base)
            for key in celery:
                other = (key, REDIS)
                value = None
                if measured(rates.get(ff)) and measured(rates.get(other)):
                    value = rates[ff] / rates[other]
                defaults = key == "celery"
                add(
                    f"{drain}: Firefly on {NAMES[base]} ÷ {labels[key]}"
                    + (" (its defaults)" if defaults else ""),
                    f"≥ {CELERY_RATIO}×" if defaults else "reported",
                    ratio(value, ff, other),
                    verdict(value, CELERY_RATIO) if defaults else "reported",
                    (base, ",".join(["firefly", *celery])),
                    across=True,
                )
    if "firefly" in labels and "fffeat" in labels:
        for vendor in opts.vendors:
            ff, feat = ("firefly", vendor), ("fffeat", vendor)
            value = paired(runs, feat, ff)
            add(
                f"{drain}, {NAMES[vendor]}: features on (scheduler, timeout, unique key, "
                "tags) ÷ plain",
                f"≥ {FEATURES_RATIO}×",
                ratio(value, feat, ff),
                verdict(value, FEATURES_RATIO),
                (vendor, "firefly,fffeat"),
            )
    return figures


def firefly_database(opts: Options, rates: dict[tuple[str, str], float]) -> str | None:
    """Where Firefly's drain is set beside Celery's: PostgreSQL, the database a team would
    run it on; when it was not measured, the fastest database that was."""
    drained = [v for v in opts.vendors if measured(rates.get(("firefly", v)))]
    if "postgres" in drained:
        return "postgres"
    return max(drained, key=lambda v: rates[("firefly", v)], default=None)


def command(opts: Options, vendor: str, systems: str) -> str:
    """The command line that measures a figure again, with this run's options."""
    cmd = f".venv/bin/python bench/drain.py --db {vendor} --systems {systems}"
    if opts.quick:
        cmd += " --quick"
    if opts.runs != (1 if opts.quick else 3):
        cmd += f" --runs {opts.runs}"
    if opts.extra.tasks:
        cmd += f" --tasks {opts.extra.tasks}"
    if opts.extra.cap:
        cmd += f" --cap {opts.extra.cap:g}"
    return cmd


if __name__ == "__main__":
    main()
