"""Figure 2 — scaling: threads and processes, with I/O-bound and no-op tasks.

I/O-bound tasks sleep 10 ms. For each run: ``--concurrency 1`` vs ``--concurrency 8`` (one
process), and two consumer processes vs one (``--concurrency 1`` each); for no-op tasks, two
processes vs one. Throughput comes from the completion times each system records; a
configuration stops when the queue is empty or after its cap. Ratios are computed within each
run, then the median is taken.

Firefly runs on every database; the peers and the raw SQL ceilings on ``--peer-db``
(PostgreSQL by default) to keep the full suite under 30 minutes.

    python3 bench/scaling.py [--quick] [--runs 3] [--db ...] [--peer-db postgres]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import measure
from bench.databases import Database
from bench.log import log
from bench.options import Options, options, parser
from bench.reports import header, save
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
RATIOS = [
    ("sleep c8 ÷ c1", "sleep c8", "sleep c1", 6.0),
    ("sleep 2p ÷ 1p", "sleep 2p", "sleep c1", 1.8),
    ("noop 2p ÷ 1p", "noop 2p", "noop 1p", None),
]
NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB"}


def applicable(system: System, config: str) -> bool:
    _, workload, _, concurrency = next(c for c in CONFIGS if c[0] == config)
    if system in PEERS:  # the peers added for drain, enqueue, latency and idle only
        return False
    if system.kind == "raw":
        return workload == "noop" and system.key != "rawstmt"
    if concurrency and concurrency > 1 and not system.concurrency:
        return False  # no --concurrency of its own
    # pgqueuer's per-entrypoint concurrency_limit is global, not per worker
    return not (system.kind == "pgq" and config == "sleep 2p")


def main() -> None:
    p = parser(__doc__.split("\n")[1])
    p.add_argument("--peer-db", default="postgres", help="databases where peers run too")
    opts = options(p.parse_args())
    peer_dbs = [v for v in opts.extra.peer_db.split(",") if v]
    sizes = {
        "sleep10": (1000, 2.0) if opts.quick else (4000, 3.0),
        "noop": (2000, 2.0) if opts.quick else (20_000, 4.0),
    }
    runs: dict[tuple[str, str, str], list[float]] = {}
    unavailable: set[tuple[str, str]] = set()
    for vendor in opts.vendors:
        db = Database(vendor, "scaling")
        log(f"scaling on {db.durability()}")
        systems = [
            s for s in opts.systems
            if vendor in s.vendors and (s.key == "firefly" or s.pool or vendor in peer_dbs)
        ]  # fmt: skip
        for _ in range(opts.runs):
            for system in systems:
                for name, workload, processes, concurrency in CONFIGS:
                    if (system.key, vendor) in unavailable or not applicable(system, name):
                        continue
                    n, cap = sizes[workload]
                    try:
                        result = measure.drain(
                            system, db, workload, n, processes=processes,
                            concurrency=concurrency, cap=cap,
                        )  # fmt: skip
                    except Unavailable:
                        unavailable.add((system.key, vendor))
                        continue
                    runs.setdefault((system.key, vendor, name), []).append(result["rate"])
        db.drop()
    report = summarize(opts, runs)
    print(report["markdown"])
    save("scaling", report)


def summarize(opts: Options, runs: dict[tuple[str, str, str], list[float]]) -> dict[str, Any]:
    md = header("Scaling with threads and processes", opts)
    md += (
        "\nTasks/s (median of runs); ratios are computed within each run, then the median "
        "is taken. `sleep` tasks sleep 10 ms; `cN` = one process with `--concurrency N` "
        "(pgqueuer: the entrypoint's concurrency_limit); `2p` = two consumer processes.\n"
    )
    figures = []
    for vendor in opts.vendors:
        rows = []
        for system in opts.systems:
            row = [system.label]
            measured = False
            for name, *_ in CONFIGS:
                values = runs.get((system.key, vendor, name))
                measured |= bool(values)
                row.append(f"{fmt(median(values))}/s" if values else "n/a")
            for _, top, bottom, _target in RATIOS:
                a, b = runs.get((system.key, vendor, top)), runs.get((system.key, vendor, bottom))
                if a and b:
                    ratio = median(x / y for x, y in zip(a, b, strict=False) if y)
                    row.append(f"{ratio:.2f}×")
                else:
                    row.append("n/a")
            if measured:
                rows.append(row)
        if not rows:
            continue
        md += f"\n### {NAMES[vendor]}\n\n"
        md += table(["system", *(c[0] for c in CONFIGS), *(r[0] for r in RATIOS)], rows)
        md += "\n"
        for label, top, bottom, target in RATIOS:
            a = runs.get(("firefly", vendor, top))
            b = runs.get(("firefly", vendor, bottom))
            ratio = median(x / y for x, y in zip(a, b, strict=False) if y) if a and b else None
            figures.append(
                {
                    "figure": f"Scaling {label}, {NAMES[vendor]}",
                    "target": f"≥ {target}×" if target else "reported",
                    "value": f"{ratio:.2f}×" if ratio else "n/a",
                    "verdict": verdict(ratio, target) if target else "reported",
                }
            )
    return {
        "markdown": md,
        "figures": figures,
        "runs": {"/".join(k): v for k, v in runs.items()},
    }


if __name__ == "__main__":
    main()
