"""A script's report: its header, its figures kept as bench/results/NAME.json and NAME.md for
run_all and the README, and the command that measures a figure again."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shlex
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.options import Options
from bench.paths import RESULTS


def machine(*, load: bool = True) -> str:
    cores = os.cpu_count()
    line = f"{platform.node()}: {cores} cores, Python {platform.python_version()}"
    if not load:  # run_all's report, which has the load during the run
        return line + details()
    return line + f", load {os.getloadavg()[0]:.1f}"


def details() -> str:
    """The CPU model, the memory and Django's version (without importing Django)."""
    parts = []
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next(ln for ln in cpuinfo.splitlines() if ln.startswith("model name"))
        parts.append(model.split(":", 1)[1].strip())
        meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0]  # MemTotal: N kB
        parts.append(f"{int(meminfo.split()[1]) / 1024**2:.0f} GiB of memory")
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    with contextlib.suppress(metadata.PackageNotFoundError):
        parts.append(f"Django {metadata.version('django')}")
    return "".join(f", {part}" for part in parts)


def command(script: str, opts: Options | None = None, *args: str) -> str:
    """The command line that measures a figure again: ``bench/SCRIPT.py`` with ``args``, and
    ``--quick`` or ``--runs N`` as ``opts`` had them (the default number of runs goes unsaid)."""
    words = [".venv/bin/python", f"bench/{script}.py", *args]
    if opts is not None and opts.quick:
        words.append("--quick")
    if opts is not None and opts.runs != (1 if opts.quick else 3):
        words += ["--runs", str(opts.runs)]
    return shlex.join(words)


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
