"""Percentiles of wait and run times, read from the rollups' duration histograms.

A rollup counts each finished attempt in one of the buckets of ``firefly_tasks.rollups.BOUNDS``
(bucket ``i`` holds the durations above ``BOUNDS[i - 1]`` up to ``BOUNDS[i]``, the last one
everything above the last bound), so a percentile is known to within its bucket: it is read by
linear interpolation inside the bucket, as Prometheus' ``histogram_quantile`` does, and one that
falls in the open last bucket is reported as "above the last bound".
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from firefly_tasks.rollups import BOUNDS, RUN_BUCKETS, WAIT_BUCKETS

QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Percentile:
    quantile: float
    seconds: float
    above: bool = False  # in the open last bucket: more than ``seconds``

    @property
    def delta(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.seconds)


def percentile(buckets: Sequence[float], quantile: float) -> Percentile | None:
    """The ``quantile`` (0 < q ≤ 1) of the durations counted in ``buckets``; None if empty."""
    total = sum(buckets)
    if total <= 0:
        return None
    rank = quantile * total
    seen = 0.0
    for i, count in enumerate(buckets):
        if not count:
            continue
        if seen + count >= rank:
            if i >= len(BOUNDS):
                return Percentile(quantile, float(BOUNDS[-1]), above=True)
            lower = float(BOUNDS[i - 1]) if i else 0.0
            upper = float(BOUNDS[i])
            return Percentile(quantile, lower + (upper - lower) * (rank - seen) / count)
        seen += count
    return Percentile(quantile, float(BOUNDS[-1]), above=True)  # pragma: no cover (float dust)


@dataclass(frozen=True)
class Spread:
    """p50, p95 and p99 of one histogram, each None when it counted nothing."""

    p50: Percentile | None
    p95: Percentile | None
    p99: Percentile | None

    @classmethod
    def of(cls, buckets: Sequence[float]) -> Spread:
        return cls(*(percentile(buckets, q) for q in QUANTILES))


def run_spread(sums: Mapping[str, float | None]) -> Spread:
    """Run-time percentiles of summed rollup columns (``run_b00`` ... by name)."""
    return Spread.of([sums.get(name) or 0 for name in RUN_BUCKETS])


def wait_spread(sums: Mapping[str, float | None]) -> Spread:
    """Wait-time percentiles of summed rollup columns (``wait_b00`` ... by name)."""
    return Spread.of([sums.get(name) or 0 for name in WAIT_BUCKETS])
