"""Figure 2 — scaling: threads and processes, with I/O-bound and no-op tasks; scale-out against
one PostgreSQL.

I/O-bound tasks sleep 10 ms. For each run: ``--concurrency 1`` vs ``--concurrency 8`` (one
process), and two consumer processes vs one (``--concurrency 1`` each); for no-op tasks, two
processes vs one. Throughput comes from the completion times each system records; a
configuration stops when the queue is empty or after its cap (one more second for every
process past the first: they start on shared cores). Ratios are computed within each run,
then the median is taken.

On PostgreSQL, also 4 and 8 processes (Firefly, and pgqueuer's no-op), reported as what they
are on this 2-core machine: CPU contention. With ``--pin`` (the default when ``taskset`` exists
and a private cluster starts, see ``bench/pinned.py``) PostgreSQL is a private cluster pinned to
core 1 and every consumer runs on core 0, so the curve shows the database, not the consumers and
the server fighting over both cores; only Firefly and pgqueuer are measured there. During each
PostgreSQL drain of Firefly or pgqueuer, ``bench/pgstats.py`` samples ``pg_stat_activity``, the
server's CPU, and ``pg_stat_wal`` and ``pg_stat_database`` deltas, and the report names where the
database saturates.

Firefly runs on every database; the peers and the raw SQL ceilings on ``--peer-db``
(PostgreSQL by default) when not pinned.

    python3 bench/scaling.py [--quick] [--runs 3] [--db ...] [--peer-db postgres] [--no-pin]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import measure, pgstats, pinned
from bench.databases import Database
from bench.log import log
from bench.options import Options, options, parser
from bench.reports import command, header, save
from bench.systems import PEERS, System, Unavailable
from bench.tables import fmt, median, table, verdict

# (name, workload, processes, concurrency per process: "n" = the system's --concurrency n)
CONFIGS = [
    ("sleep c1", "sleep10", 1, 1),
    ("sleep c8", "sleep10", 1, 8),
    ("sleep 2p", "sleep10", 2, 1),
    ("noop 1p", "noop", 1, None),
    ("noop 2p", "noop", 2, None),
]
# PostgreSQL only, Firefly (and pgqueuer's no-op): more consumer processes than cores.
CROWDED = [
    ("sleep 4p", "sleep10", 4, 1),
    ("sleep 8p", "sleep10", 8, 1),
    ("noop 4p", "noop", 4, None),
    ("noop 8p", "noop", 8, None),
]
ALL = CONFIGS + CROWDED
RATIOS = [
    ("sleep c8 ÷ c1", "sleep c8", "sleep c1", 6.0),
    ("sleep 2p ÷ 1p", "sleep 2p", "sleep c1", 1.8),
    ("noop 2p ÷ 1p", "noop 2p", "noop 1p", None),
]
# Issue #20's scale-out figures (reported: no numeric target), each ÷ one process.
SCALE_OUT = [
    ("no-op 2p ÷ 1p", "noop 2p", "noop 1p"),
    ("10 ms 2p ÷ 1p", "sleep 2p", "sleep c1"),
    ("no-op 4p ÷ 1p", "noop 4p", "noop 1p"),
    ("no-op 8p ÷ 1p", "noop 8p", "noop 1p"),
    ("10 ms 4p ÷ 1p", "sleep 4p", "sleep c1"),
    ("10 ms 8p ÷ 1p", "sleep 8p", "sleep c1"),
]
BASE = {"noop": "noop 1p", "sleep10": "sleep c1"}
CONTENTION = "on 2 cores: CPU contention"
SAMPLED = ("firefly", "pgq")  # the systems whose PostgreSQL drains pgstats samples
NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB"}

Key = tuple[str, str, str]  # system, database, configuration


def config(name: str) -> tuple[str, str, int, int | None]:
    return next(c for c in ALL if c[0] == name)


def applicable(system: System, name: str, vendor: str = "postgres") -> bool:
    _, workload, processes, concurrency = config(name)
    if system in PEERS:  # the peers added for drain, enqueue, latency and idle only
        return False
    if processes > 2:
        if vendor != "postgres" or system.key not in SAMPLED:
            return False
        return system.key == "firefly" or workload == "noop"
    if system.kind == "raw":
        return workload == "noop" and system.key != "rawstmt"
    if concurrency and concurrency > 1 and not system.concurrency:
        return False  # no --concurrency of its own
    # pgqueuer's per-entrypoint concurrency_limit is global, not per worker
    return not (system.kind == "pgq" and name == "sleep 2p")


def main() -> None:
    p = parser(__doc__.split("\n")[1])
    p.add_argument("--peer-db", default="postgres", help="databases where peers run too")
    p.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="PostgreSQL as a private cluster on core 1, the consumers on core 0 (default: "
        "when taskset exists and the cluster starts; --no-pin: the shared server, every system)",
    )
    opts = options(p.parse_args())
    state: dict[str, Any] = {"runs": {}, "pg": {}, "durability": {}, "pinned": {}}
    for vendor in opts.vendors:
        if vendor == "postgres" and opts.extra.pin is not False:
            try:
                with pinned.private_postgres() as cluster:
                    measure_vendor(opts, vendor, state, cluster)
                continue
            except pinned.Unpinnable as exc:
                if opts.extra.pin:
                    raise SystemExit(f"--pin: {exc}") from exc
                log(f"PostgreSQL not pinned: {exc}")
        measure_vendor(opts, vendor, state, None)
    report = summarize(opts, state)
    print(report["markdown"])
    save("scaling", report)


def measure_vendor(
    opts: Options, vendor: str, state: dict[str, Any], cluster: pinned.Cluster | None
) -> None:
    peer_dbs = [v for v in opts.extra.peer_db.split(",") if v]
    sizes = {
        "sleep10": (1000, 2.0) if opts.quick else (4000, 3.0),
        "noop": (2000, 2.0) if opts.quick else (20_000, 4.0),
    }
    db = Database(vendor, "scaling")
    state["durability"][vendor] = db.durability()
    if cluster:
        state["pinned"][vendor] = cluster.describe()
    log(f"scaling on {db.durability()}{' (pinned)' if cluster else ''}")
    systems = [
        s for s in opts.systems
        if vendor in s.vendors and (s.key == "firefly" or s.pool or vendor in peer_dbs)
        and (cluster is None or s.key in SAMPLED)
    ]  # fmt: skip
    unavailable: set[str] = set()
    postmaster = cluster.postmaster if cluster else None
    for _ in range(opts.runs):
        for system in systems:
            for name, workload, processes, concurrency in ALL:
                if system.key in unavailable or not applicable(system, name, vendor):
                    continue
                n, cap = sizes[workload]
                cap += processes - 1  # each more consumer starts on a shared core
                sampled = vendor == "postgres" and system.key in SAMPLED
                # measure.drain names its consumer processes so: the sampler's window opens
                # as the first starts
                consumer = f"{system.key}-{db.vendor}-{workload}"
                try:
                    sampler = pgstats.Sampler(db, consumer, postmaster) if sampled else None
                    with sampler or contextlib.nullcontext():
                        result = measure.drain(
                            system, db, workload, n, processes=processes,
                            concurrency=concurrency, cap=cap,
                        )  # fmt: skip
                except Unavailable:
                    unavailable.add(system.key)
                    continue
                key = (system.key, vendor, name)
                state["runs"].setdefault(key, []).append(result["rate"])
                if sampler is not None:
                    stats = sampler.summary(result["done"], result["rate"])
                    stats["rate"] = result["rate"]
                    state["pg"].setdefault(key, []).append(stats)
                    log(f"    {name}: {_line(stats)}")
    db.drop()


def _line(stats: dict[str, Any]) -> str:
    cpu = stats.get("server_cpu")
    return (
        f"server CPU {fmt_pct(cpu)}, WAL {fmt(stats.get('wal_bytes_per_task'))} B/task, "
        f"{stats.get('xact_commit_per_task', float('nan')):.3f} commits/task, "
        f"{stats['samples']} samples: {pgstats.top_waits(stats['waits'])}"
    )


def fmt_pct(value: float | None) -> str:
    return f"{value:.0%}" if value is not None and value == value else "n/a"


def ratio(runs: dict[Key, list[float]], top: Key, bottom: Key) -> float | None:
    a, b = runs.get(top), runs.get(bottom)
    if not a or not b:
        return None
    values = [x / y for x, y in zip(a, b, strict=False) if y and x == x and y == y]
    return median(values) if values else None


def summarize(opts: Options, state: dict[str, Any]) -> dict[str, Any]:
    runs: dict[Key, list[float]] = state["runs"]
    md = header("Scaling with threads and processes", opts)
    md += (
        "\nTasks/s (median of runs); ratios are computed within each run, then the median "
        "is taken. `sleep` tasks sleep 10 ms; `cN` = one process with `--concurrency N` "
        "(pgqueuer: the entrypoint's concurrency_limit); `Np` = N consumer processes.\n"
    )
    figures = []
    for vendor in opts.vendors:
        pin = state["pinned"].get(vendor)
        rows = []
        for system in opts.systems:
            row = [system.label]
            measured = False
            for name, *_ in CONFIGS:
                values = runs.get((system.key, vendor, name))
                measured |= bool(values)
                row.append(f"{fmt(median(values))}/s" if values else "n/a")
            for _, top, bottom, _target in RATIOS:
                value = ratio(runs, (system.key, vendor, top), (system.key, vendor, bottom))
                row.append(f"{value:.2f}×" if value else "n/a")
            if measured:
                rows.append(row)
        if not rows:
            continue
        md += f"\n### {NAMES[vendor]}{', pinned' if pin else ''}\n\n"
        md += f"{state['durability'].get(vendor, '')}" + (f"; {pin}" if pin else "") + ".\n\n"
        md += table(["system", *(c[0] for c in CONFIGS), *(r[0] for r in RATIOS)], rows)
        md += "\n"
        if vendor == "postgres":
            md += scale_out(opts, state, bool(pin))
        suffix = ", pinned" if pin else ""
        for label, top, bottom, target in RATIOS:
            if pin and top.endswith("2p"):
                continue  # the scale-out figures below
            value = ratio(runs, ("firefly", vendor, top), ("firefly", vendor, bottom))
            figures.append(
                {
                    "figure": f"Scaling {label}, {NAMES[vendor]}{suffix}",
                    "target": f"≥ {target}×" if target else "reported",
                    "value": f"{value:.2f}×" if value else "n/a",
                    "verdict": verdict(value, target) if target else "reported",
                    "command": again(opts, vendor, pin),
                }
            )
        if vendor == "postgres":
            figures += scale_out_figures(opts, runs, bool(pin))
    return {
        "markdown": md,
        "figures": figures,
        "runs": {"/".join(k): v for k, v in runs.items()},
        "pgstats": {"/".join(k): v for k, v in state["pg"].items()},
        "pinned": state["pinned"],
    }


def again(opts: Options, vendor: str, pin: Any) -> str:
    """The command that measures a figure of ``vendor`` again."""
    args = ["--db", vendor, "--systems", "firefly"]
    if vendor == "postgres":
        args.append("--pin" if pin else "--no-pin")
    return command("scaling", opts, *args)


def scale_out_figures(opts: Options, runs: dict[Key, list[float]], pin: bool) -> list[dict]:
    figures = []
    for label, top, bottom in SCALE_OUT:
        crowded = config(top)[2] > 2
        if not (pin or crowded):
            continue  # not pinned, the 2p figures are the "Scaling" ones
        value = ratio(runs, ("firefly", "postgres", top), ("firefly", "postgres", bottom))
        a = median(runs.get(("firefly", "postgres", top), []))
        b = median(runs.get(("firefly", "postgres", bottom), []))
        figures.append(
            {
                "figure": f"Scale-out {label}, PostgreSQL{', pinned' if pin else ''}"
                + (f", {CONTENTION}" if crowded else ""),
                "target": "reported",
                "value": f"{value:.2f}× ({fmt(a)} vs {fmt(b)}/s)" if value else "n/a",
                "verdict": "reported",
                "command": again(opts, "postgres", pin),
            }
        )
    return figures


def merged(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's runs: the median of each figure, the wait counts summed."""
    out: dict[str, Any] = {"waits": {}, "samples": sum(s["samples"] for s in samples)}
    for stats in samples:
        for name, count in stats["waits"].items():
            out["waits"][name] = out["waits"].get(name, 0) + count
    keys = {k for s in samples for k, v in s.items() if isinstance(v, float | int)}
    for key in keys - {"samples"}:
        values = [s[key] for s in samples if key in s]
        out[key] = median(values) if values else None
    return out


def scale_out(opts: Options, state: dict[str, Any], pin: bool) -> str:
    """The PostgreSQL section: each sampled configuration's figures, and where the database
    saturates."""
    runs, pg = state["runs"], state["pg"]
    md = "\n#### Scale-out against one PostgreSQL\n\n"
    if pin:
        md += (
            "The database alone on core 1, the consumers on core 0: with 2 cores, pinned, the "
            "2 consumer processes share one core (and 4 and 8 of them, of course); that is "
            "what this machine allows. "
        )
    else:
        md += "Not pinned: the consumers and the server share both cores. "
    md += (
        f"4p and 8p are reported as what they are {CONTENTION}. Server CPU: "
        + (
            "the private cluster's processes (every backend, the WAL writer), as a share of "
            "its one core, the sampler's own backend left out"
            if pin
            else "the benchmark database's backends only, as a share of one core"
        )
        + f"; consumers: their processes' CPU, as a share of one core; both over the samples "
        f"(every {pgstats.INTERVAL:g} s) while a consumer was connected; server µs/task: the "
        "server's share ÷ tasks/s. WAL from `pg_stat_wal`"
        + ("" if pin else " (the whole shared server's)")
        + ", commits (`xact_commit`: every transaction, read-only ones too) and blocks hit from "
        "`pg_stat_database`, per task done, start-up included. Waits: each sample's client "
        "backends of the database (LISTEN connections, and those idle in every sample: a "
        "consumer's heartbeat and scheduler connections, left out) by `wait_event_type:"
        "wait_event`, `CPU` = active and waiting on nothing, summed over the runs. Bound by: "
        "database CPU at 90 % of a core or more; else WAL (`IO:WAL*`, `LWLock:WAL*`) or locks "
        "(`Lock:*`, other `LWLock:*`) in half the samples or more; else the consumers' CPU at "
        "90 % of their cores or more; else not the database when its backends wait on the "
        "client (`Client:*`, idle) in half the samples or more; else round trips (a consumer "
        "and its backend taking turns). The "
        "line under the table names the first configuration bound by the database, or, if none "
        "is, the resource nearest to it and the rate at which the server's CPU per task would "
        "fill its core.\n\n"
    )
    rows = []
    lines = []
    cores = 1 if pin else os.cpu_count() or 1  # the consumers'
    for system in opts.systems:
        configs = {}
        for name, workload, *_ in ALL:
            samples = pg.get((system.key, "postgres", name))
            if not samples:
                continue
            stats = configs[name] = merged(samples)
            base = ratio(runs, (system.key, "postgres", name),
                         (system.key, "postgres", BASE[workload]))  # fmt: skip
            crowded = config(name)[2] > 2
            rows.append([
                system.label if len(configs) == 1 else "",
                name + (f" ({CONTENTION})" if crowded else ""),
                f"{fmt(median(runs.get((system.key, 'postgres', name), [])))}/s",
                f"{base:.2f}×" if base else "n/a",
                fmt_pct(stats.get("server_cpu")),
                fmt_pct(stats.get("consumer_cpu")),
                fmt(stats.get("server_us_per_task"), 1),
                fmt(stats.get("wal_bytes_per_task")),
                fmt(stats.get("xact_commit_per_task"), 3),
                fmt(stats.get("blks_hit_per_task"), 1),
                pgstats.top_waits(stats["waits"]),
                pgstats.bound(stats, cores),
            ])  # fmt: skip
        if configs:
            db_core = "core 1" if pin else "a core"
            consumers = "core 0" if pin else "a core"
            lines.append(f"- {system.label}: "
                         + pgstats.saturation(configs, db_core, consumers, cores))  # fmt: skip
    if not rows:
        return md + "No sample.\n"
    md += table(
        ["system", "configuration", "tasks/s", "÷ 1p", "server CPU", "consumers' CPU",
         "server µs/task", "WAL bytes/task", "commits/task", "blocks hit/task",
         "top waits (share of backend samples)", "bound by"],
        rows,
    )  # fmt: skip
    md += "\n\n" + "\n".join(lines) + "\n"
    return md


if __name__ == "__main__":
    main()
