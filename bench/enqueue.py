"""Figure 3 — enqueue: ``schedule_many`` throughput, and one ``schedule()`` in autocommit
against a raw single-row INSERT of the very same row.

Per run and system, in one process (``bench/agent.py enqueue``): rounds of N ``schedule()``
calls alternating with N raw ``INSERT``s (DB-API cursor, autocommit; on PostgreSQL a plain
psycopg connection that prepares statements exactly when Django's does) of the row
``schedule()`` wrote (the peers without Django models: the same row or message their call
wrote, see bench/README.md), median time per call of each; on PostgreSQL, Firefly once more with
``OPTIONS["prepare_threshold"] = 5``; then 20,000 tasks in
``schedule_many`` calls of 1,000, against raw multi-row INSERTs of the same rows. Peers use
their own single-task API (0.4.0's ``schedule()``, django-tasks' ``enqueue()``, pgqueuer's
``enqueue()``, Procrastinate's ``defer()``, django-q2's ``async_task()``, a Huey task's call,
Celery's ``delay()``); only Firefly, pgqueuer and Procrastinate (``batch_defer()``) have a bulk
API.

Targets (issue #20): on PostgreSQL, ``schedule_many`` of 20,000 at least 1.2 times
pgqueuer's batched ``enqueue()`` of 20,000 (``bench/pgq_agent.py enqueue``, the ``pgq`` system
of the same run, same database: the ratio is taken per run, then the median; COPY is the
ceiling, in the table); one ``schedule()`` at most 1.3 times the raw single-row INSERT on
PostgreSQL and MariaDB. SQLite's figures are reported, without a verdict.

    python3 bench/enqueue.py [--quick] [--runs 3] [--db ...] [--systems ...]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import measure
from bench.databases import Database
from bench.log import log
from bench.options import Options, options, parser, stores
from bench.processes import agent
from bench.reports import command, header, save
from bench.systems import Unavailable
from bench.tables import fmt, median, table, verdict

NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB", "redis": "Redis"}
MANY_TARGET = 1.2  # Firefly's schedule_many ÷ pgqueuer's batched enqueue(), PostgreSQL
SINGLE_TARGET = 1.3  # one schedule() ÷ a raw single-row INSERT
SINGLE_VERDICTS = ("postgres", "mariadb")  # SQLite's ratio is reported
# Firefly again on PostgreSQL with OPTIONS["prepare_threshold"] = 5 (see bench/dbconf.py).
PREPARED = "firefly-prepared"
PREPARE_ENV = "FIREFLY_BENCH_PG_PREPARE_THRESHOLD"
QUICK = {"rounds": 2, "per_round": 50, "many": 2000, "chunk": 1000}
FULL = {"rounds": 5, "per_round": 200, "many": 20_000, "chunk": 1000}


def main() -> None:
    p = parser(__doc__.split("\n")[1])
    opts = options(p.parse_args())
    args = QUICK if opts.quick else FULL
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for vendor in stores(opts):
        db = Database(vendor, "enqueue")
        log(f"enqueue on {db.durability()}")
        keys = {s.key for s in opts.systems}
        systems = [
            s for s in opts.systems
            if s.kind != "raw" and vendor in s.vendors and s.enqueues_as not in keys
        ]  # fmt: skip
        for run in range(opts.runs):
            for system in systems:
                variants = [(system.key, {})]
                if system.key == "firefly" and vendor == "postgres":
                    variants.append((PREPARED, {PREPARE_ENV: "5"}))
                for key, env in variants:
                    try:
                        measure.prepare(system, db)
                        agent(system, db, "reset")
                        result = agent(system, db, "enqueue", env=env, **args)
                    except Unavailable:
                        break
                    result["run"] = run  # pairs Firefly's bulk figure with pgqueuer's
                    log(
                        f"  {key:8} {vendor:8} schedule {result['single_ms']:.3f} ms, raw "
                        f"{result['raw_single_ms']:.3f} ms, "
                        f"many {fmt(result.get('many_per_s'))}/s"
                    )
                    runs.setdefault((key, vendor), []).append(result)
        db.drop()
    report = summarize(opts, runs)
    print(report["markdown"])
    save("enqueue", report)


def bulk_ratios(
    runs: dict[tuple[str, str], list[dict[str, Any]]], vendor: str
) -> tuple[list[float], float | None]:
    """Firefly's ``schedule_many`` ÷ pgqueuer's batched ``enqueue()``, one ratio a run (the
    two measured in the same run, on the same database), and pgqueuer's median tasks/s."""
    pgq = {r.get("run"): r for r in runs.get(("pgq", vendor), []) if r.get("many_per_s")}
    ratios = [
        r["many_per_s"] / pgq[r.get("run")]["many_per_s"]
        for r in runs.get(("firefly", vendor), [])
        if r.get("many_per_s") and r.get("run") in pgq
    ]
    pgq_many = median(r["many_per_s"] for r in pgq.values()) if pgq else None
    return ratios, pgq_many


def many_figure(
    opts: Options, runs: dict[tuple[str, str], list[dict[str, Any]]], vendor: str,
    many: float | None, raw_copy: float | None,
) -> dict[str, str]:  # fmt: skip
    """The ``schedule_many`` figure: against pgqueuer's bulk enqueue on PostgreSQL, else
    reported."""
    n = (QUICK if opts.quick else FULL)["many"]
    if vendor != "postgres":
        return {
            "figure": f"Enqueue: schedule_many of {n:,}, {NAMES[vendor]}",
            "target": "measured",
            "value": f"{fmt(many)}/s",
            "verdict": "reported",
            "command": command("enqueue", opts, "--db", vendor, "--systems", "firefly"),
        }
    ratios, pgq_many = bulk_ratios(runs, vendor)
    ratio = median(ratios) if ratios else None
    copy = f", COPY {fmt(raw_copy)}/s" if raw_copy else ""
    return {
        "figure": f"Enqueue: schedule_many of {n:,} ÷ pgqueuer's bulk enqueue(), PostgreSQL",
        "target": f"≥ {MANY_TARGET}×",
        "value": (
            f"{ratio:.2f}× ({fmt(many)} vs {fmt(pgq_many)}/s{copy})"
            if ratio is not None
            else f"n/a: pgqueuer not measured in the same run ({fmt(many)}/s{copy})"
        ),
        "verdict": verdict(ratio, MANY_TARGET),
        "command": command("enqueue", opts, "--db", vendor, "--systems", "firefly,pgq"),
    }


def summarize(opts: Options, runs: dict[tuple[str, str], list[dict[str, Any]]]) -> dict[str, Any]:
    md = header("Enqueue", opts)
    md += (
        "\nSingle: median time of one call in autocommit (its own commit; q = SQL queries it "
        "makes), and the same row written by a raw single-row INSERT, alternating in rounds; "
        "ratio = call ÷ raw, per run, median. Raw statements on PostgreSQL use a plain psycopg "
        "connection (server-side binding) that prepares statements exactly when Django's "
        "connection does: never by default, after 5 runs with OPTIONS prepare_threshold = 5 "
        '(the second Firefly row). "raw, prepared" is the same INSERT prepared after 5 runs '
        "(psycopg's own default), for reference beside a connection that does not prepare. "
        f"Bulk: tasks/s over {(QUICK if opts.quick else FULL)['many']:,} tasks in calls of "
        "1,000 (pgqueuer: batched enqueue() of 1,000; Firefly's schedule_many ÷ pgqueuer's is "
        "taken per run, then the median), against raw multi-row INSERTs of the same rows "
        "(1,000 per statement) and, on PostgreSQL, COPY. For Huey the raw side is its "
        "storage's own write of the same message bytes; for Celery an LPUSH of the message its "
        "call wrote.\n"
    )
    figures = []
    for vendor in stores(opts):
        rows = []
        entries = [(system.key, system.label) for system in opts.systems]
        if any(key == "firefly" for key, _ in entries):
            entries.insert(
                [key for key, _ in entries].index("firefly") + 1,
                (PREPARED, "Firefly, OPTIONS prepare_threshold = 5"),
            )
        for key, label in entries:
            rs = runs.get((key, vendor))
            if not rs:
                continue

            def med(name: str, rs: list[dict[str, Any]] = rs) -> float | None:
                values = [r[name] for r in rs if r.get(name) is not None]
                return median(values) if values else None

            ratio = median(r["single_ms"] / r["raw_single_ms"] for r in rs)
            prepared = med("raw_prepared_ms")
            many, raw_many = med("many_per_s"), med("raw_many_per_s")
            raw_copy = med("raw_copy_per_s")
            rows.append(
                [
                    label,
                    f"{med('single_ms'):.3f} ms ({fmt(med('queries_per_call'))} q)"
                    if rs[0].get("queries_per_call") is not None
                    else f"{med('single_ms'):.3f} ms",
                    f"{med('raw_single_ms'):.3f} ms",
                    f"{ratio:.2f}×",
                    f"{prepared:.3f} ms" if prepared else "n/a",
                    f"{fmt(many)}/s" if many else "n/a (no bulk API)",
                    f"{fmt(raw_many)}/s" if raw_many else "n/a",
                    f"{many / raw_many:.2f}×" if many and raw_many else "n/a",
                    f"{fmt(raw_copy)}/s" if raw_copy else "n/a",
                ]
            )
            if key in ("firefly", PREPARED):
                against = "raw single-row INSERT"
                if key == PREPARED:
                    against += ", both prepared"
                elif prepared:
                    against += ", neither prepared"
                judged = vendor in SINGLE_VERDICTS
                figures.append(
                    {
                        "figure": f"Enqueue: {label} schedule() ÷ {against}, {NAMES[vendor]}",
                        "target": f"≤ {SINGLE_TARGET}×" if judged else "measured",
                        "value": (
                            f"{ratio:.2f}× ({med('single_ms'):.3f} vs "
                            f"{med('raw_single_ms'):.3f} ms)"
                        ),
                        "verdict": verdict(ratio, SINGLE_TARGET, higher_is_better=False)
                        if judged
                        else "reported",
                        "command": command("enqueue", opts, "--db", vendor, "--systems", "firefly"),
                    }
                )
            if key == "firefly":
                figures.append(many_figure(opts, runs, vendor, many, raw_copy))
        if rows:
            md += f"\n### {NAMES[vendor]}\n\n"
            md += table(
                ["system", "one call", "raw INSERT", "call ÷ raw", "raw, prepared", "bulk",
                 "raw multi-row", "bulk ÷ raw", "raw COPY"],
                rows,
            )  # fmt: skip
            md += "\n"
            ratios, _ = bulk_ratios(runs, vendor)
            if ratios:
                md += (
                    "\nFirefly's schedule_many ÷ pgqueuer's bulk enqueue(), per run: "
                    + ", ".join(f"{r:.2f}×" for r in ratios)
                    + f"; median {median(ratios):.2f}×.\n"
                )
    return {"markdown": md, "figures": figures,
            "runs": {f"{k[0]}/{k[1]}": v for k, v in runs.items()}}  # fmt: skip


if __name__ == "__main__":
    main()
