"""The machine's load while ``run_all.py`` runs: a thread samples the 1-minute load average
(``os.getloadavg()``) and the CPU counters of ``/proc/stat`` every few seconds; each script's
window, and the whole run, is summarised as the min, median and max of the load and the share
of CPU time busy (and stolen by the hypervisor) over the window."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.tables import median

INTERVAL = 5.0  # seconds between samples


@dataclass
class Sample:
    at: float  # time.monotonic()
    load1: float
    busy: int  # jiffies: user, nice, system, irq, softirq
    steal: int
    total: int  # jiffies: all of the above, idle and iowait


def read_sample() -> Sample:
    busy = steal = total = 0
    try:
        with open("/proc/stat") as handle:
            fields = [int(x) for x in handle.readline().split()[1:9]]
        user, nice, system, idle, iowait, irq, softirq, steal = fields
        busy = user + nice + system + irq + softirq
        total = busy + idle + iowait + steal
    except (OSError, ValueError):  # not Linux: the load alone
        pass
    return Sample(time.monotonic(), os.getloadavg()[0], busy, steal, total)


class LoadSampler(threading.Thread):
    """Samples every ``interval`` seconds until ``stop()``; ``mark(name)`` starts the window of
    the script ``name`` (and ends the previous one)."""

    def __init__(self, interval: float = INTERVAL) -> None:
        super().__init__(name="load-sampler", daemon=True)
        self.interval = interval
        self.samples: list[Sample] = []
        self.windows: list[tuple[str, int, int]] = []  # name, first and last sample index
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            self._take()

    def _take(self) -> int:
        with self._lock:
            self.samples.append(read_sample())
            return len(self.samples) - 1

    def mark(self, name: str) -> None:
        """Start the window of ``name``, ending the one before, with a sample at the edge."""
        index = self._take()
        with self._lock:
            if self.windows:
                last = self.windows[-1]
                self.windows[-1] = (last[0], last[1], index)
            self.windows.append((name, index, index))

    def stop(self) -> None:
        index = self._take()
        self._stopped.set()
        with self._lock:
            if self.windows:
                last = self.windows[-1]
                self.windows[-1] = (last[0], last[1], index)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per script and ``"overall"``: samples, load min/median/max, CPU busy and steal %."""
        with self._lock:
            samples = list(self.samples)
            windows = list(self.windows)
        out = {name: summarise(samples[first : last + 1]) for name, first, last in windows}
        if samples:
            out["overall"] = summarise(samples)
        return out


def summarise(samples: list[Sample]) -> dict[str, Any]:
    loads = [s.load1 for s in samples]
    first, last = samples[0], samples[-1]
    elapsed = last.total - first.total
    return {
        "samples": len(samples),
        "load_min": min(loads),
        "load_median": median(loads),
        "load_max": max(loads),
        "busy_pct": 100 * (last.busy - first.busy) / elapsed if elapsed > 0 else None,
        "steal_pct": 100 * (last.steal - first.steal) / elapsed if elapsed > 0 else None,
    }


NOTE = (
    "Load: the 1-minute load average (processes running or waiting for a core, the "
    f"benchmark's own included) sampled every {INTERVAL:g} s, min / median / max over the "
    "script's window; CPU busy and steal: the share of all cores' time over the window spent "
    "running (user, system, interrupts) and taken by the hypervisor for other guests "
    "(`/proc/stat`). A load well above the cores, or any steal, means something else shared "
    "the machine."
)


def cells(summary: dict[str, Any] | None) -> list[str]:
    """Load min / median / max, CPU busy, CPU steal: a row's cells, n/a when not sampled."""
    if not summary:
        return ["n/a", "n/a", "n/a"]

    def pct(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}%"

    loads = f"{summary['load_min']:.2f} / {summary['load_median']:.2f} / {summary['load_max']:.2f}"
    return [loads, pct(summary["busy_pct"], 0), pct(summary["steal_pct"], 1)]
