"""Where the benchmarks keep things: the checkout they run, the peers' virtualenvs, results."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
VENVS = Path(os.environ.get("FIREFLY_BENCH_VENVS", BENCH / ".venvs"))
RESULTS = BENCH / "results"
