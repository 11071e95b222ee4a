"""The command line every measuring script shares: ``--quick``, ``--runs``, ``--db``,
``--systems``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from bench.databases import REDIS, VENDORS
from bench.systems import SYSTEMS, System


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small smoke run: 1 run, small sizes")
    p.add_argument("--runs", type=int, default=None, help="runs per measurement (default 3)")
    p.add_argument(
        "--db",
        default=",".join(VENDORS),
        help="comma-separated databases among postgres,sqlite,mariadb (default: all)",
    )
    p.add_argument(
        "--systems",
        default=",".join(s.key for s in SYSTEMS if not s.pool),
        help="comma-separated systems among " + ",".join(s.key for s in SYSTEMS),
    )
    return p


@dataclass
class Options:
    quick: bool
    runs: int
    vendors: list[str]
    systems: list[System]
    extra: argparse.Namespace = field(default_factory=argparse.Namespace)


def options(args: argparse.Namespace) -> Options:
    vendors = [v for v in args.db.split(",") if v]
    for vendor in vendors:
        if vendor not in VENDORS:
            raise SystemExit(f"unknown database {vendor!r}")
    keys = [k for k in args.systems.split(",") if k]
    by_key = {s.key: s for s in SYSTEMS}
    for key in keys:
        if key not in by_key:
            raise SystemExit(f"unknown system {key!r}")
    runs = args.runs or (1 if args.quick else 3)
    return Options(args.quick, runs, vendors, [by_key[k] for k in keys], args)


def stores(opts: Options) -> list[str]:
    """Where the peer-comparison scripts run: the databases of ``--db``, and Redis when a
    system that keeps its queue there is among ``--systems``."""
    redis = any(REDIS in s.vendors for s in opts.systems)
    return [*opts.vendors, *([REDIS] if redis else [])]
