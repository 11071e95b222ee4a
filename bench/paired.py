"""Comparing two builds of the consumer's loop in one process: claimed batches run with one
and then the other, in pairs whose order alternates. Adjacent batches run milliseconds apart,
so the machine's drift, which moves whole runs of ``bench/drain.py`` by ±5 % or more on a
shared two-core machine, hits both sides of a pair alike (``rollup_cost.py``,
``timeout_cost.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

Batch = Callable[[bool], int]
"""Claim and run one batch with (True) or without (False) the thing measured; its tasks."""


def compare(batch: Batch, label: str, *, least: int = 200) -> None:
    """Run pairs of batches until a side claims fewer than ``least`` tasks, then print the
    time a task with and without (CPU: this process's; wall: adds the server's share, one
    round trip after another) and the cost as a share: the median of the per-pair ratios, with
    their interquartile range, and the ratio of the totals."""

    def timed(side: bool) -> tuple[int, float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        done = batch(side)
        return done, time.process_time() - cpu, time.perf_counter() - wall

    timed(True), timed(False)  # warm: the first run of a task name is never grouped
    totals = {True: [0, 0.0, 0.0], False: [0, 0.0, 0.0]}
    ratios: dict[str, list[float]] = {"CPU": [], "wall": []}
    pair = 0
    while True:
        order = (True, False) if pair % 2 else (False, True)
        sides = {side: timed(side) for side in order}
        if min(done for done, _, _ in sides.values()) < least:  # a queue ran dry
            break
        for side, figures in sides.items():
            for i, value in enumerate(figures):
                totals[side][i] += value
        (on_n, on_cpu, on_wall), (off_n, off_cpu, off_wall) = sides[True], sides[False]
        ratios["CPU"].append((on_cpu / on_n) / (off_cpu / off_n))
        ratios["wall"].append((on_wall / on_n) / (off_wall / off_n))
        pair += 1
    print(f"{label}: {pair} pairs of batches")
    for i, figure in ((1, "CPU"), (2, "wall")):
        per = {side: totals[side][i] / totals[side][0] * 1e6 for side in (True, False)}
        low, _, high = statistics.quantiles(ratios[figure], n=4)
        median = statistics.median(ratios[figure])
        print(
            f"{label} {figure}: with {per[True]:.2f} µs/task, without {per[False]:.2f} µs/task; "
            f"with ÷ without: per pair {median:.4f} (IQR {low:.4f}–{high:.4f}), "
            f"totals {per[True] / per[False]:.4f}"
        )
