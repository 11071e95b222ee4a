"""A script's report: its header, and its figures kept as bench/results/NAME.json and NAME.md
for run_all and the README."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

from bench.options import Options
from bench.paths import RESULTS


def machine() -> str:
    cores = os.cpu_count()
    load = os.getloadavg()[0]
    return f"{platform.node()}: {cores} cores, Python {platform.python_version()}, load {load:.1f}"


def save(name: str, report: dict[str, Any]) -> Path:
    """Keep a script's figures as JSON (bench/results/NAME.json) for run_all and the README."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "name": name,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **report,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=1, default=str))
    md = RESULTS / f"{name}.md"
    md.write_text(report.get("markdown", ""))
    return path


def header(title: str, opts: Options) -> str:
    return (
        f"## {title}\n\n{datetime.date.today().isoformat()}, {machine()}; "
        f"runs: {opts.runs}{' (quick)' if opts.quick else ''}\n"
    )
