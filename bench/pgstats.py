"""What a PostgreSQL server does during a drain, from ``pg_stat_*`` and ``/proc``: where it would
saturate (its CPU, the WAL, locks) or that it waits on its clients.

``Sampler`` wraps one ``measure.drain``. It hears of every process the drain starts
(``bench.processes.listen``): the first consumer's start opens the window (counters read), the
first other process started after the consumers (the agent reading the completion times), or the
block's end, closes it once the consumers' backends are gone (a backend flushes its statistics
as it exits). Every ``INTERVAL`` seconds in between, on a connection to the ``postgres``
database (its own backend left out of everything):

- ``pg_stat_activity``: what each client backend of the benchmark's database is doing. ``CPU``:
  active, waiting on nothing; otherwise its ``wait_event_type:wait_event`` (``Client:ClientRead``
  idle, the backend waiting for its consumer; ``IO:WALSync``, ``LWLock:WALWrite``, ``Lock:...``).
  LISTEN connections (idle on their last ``LISTEN``), and backends waiting on their client in
  every sample (a consumer's heartbeat and scheduler connections), are left out;
- the server's CPU time: on a private cluster (its postmaster's pid known), utime + stime of the
  postmaster and its living children plus what it reaped (``cutime`` + ``cstime``): every backend
  and the WAL writer, the sampler's own backend taken out; on a shared server, the client
  backends of the benchmark's database only (the others' work is not ours);
- the consumer processes' CPU time (with their children).

Between the window's ends: ``pg_stat_wal`` (wal_records, wal_fpi, wal_bytes, wal_write,
wal_sync: the whole cluster's, so a shared server's includes other databases') and
``pg_stat_database`` of the benchmark's database (xact_commit, blks_hit, blks_read,
tup_updated). CPU shares are over the samples' span while a consumer's backend was connected.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from typing import Any

from bench import databases, processes
from bench.databases import Database

# Seconds between samples: a 3 s drain gets some 30. A sample costs the orchestrator (on the
# consumers' core when pinned) about 0.3 ms of CPU and its backend 0.1 ms (left out).
INTERVAL = 0.1
MIN_SAMPLES = 10  # fewer, and a configuration's figures point to nothing
TICK = os.sysconf("SC_CLK_TCK")
WAL = ("wal_records", "wal_fpi", "wal_bytes", "wal_write", "wal_sync")
DB = ("xact_commit", "blks_hit", "blks_read", "tup_updated")
COUNTERS_SQL = (
    f"SELECT {', '.join(f'w.{c}' for c in WAL)}, {', '.join(f'd.{c}' for c in DB)} "
    "FROM pg_stat_wal w, pg_stat_database d WHERE d.datname = %s"
)
ACTIVITY_SQL = (
    "SELECT pid, state, wait_event_type, wait_event, left(query, 6) FROM pg_stat_activity "
    "WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def proc_cpu(pid: int, reaped: bool = False) -> float | None:
    """utime + stime of ``pid`` in seconds (and of its reaped children: cutime + cstime)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def server_cpu(postmaster: int) -> float | None:
    """The CPU time of a whole server: the postmaster, what it reaped, its living children."""
    total = proc_cpu(postmaster, reaped=True)
    if total is None:
        return None
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{postmaster}/task"):
            with open(f"/proc/{postmaster}/task/{task}/children") as handle:
                for child in handle.read().split():
                    total += proc_cpu(int(child)) or 0.0
    return total


def category(state: str | None, kind: str | None, event: str | None) -> str:
    if kind:
        return f"{kind}:{event}"
    return "CPU" if state == "active" else str(state)  # e.g. "idle in transaction"


class Sampler:
    """Samples a server while one drain of ``db`` runs; ``consumer`` is the name
    ``measure.drain`` gives its consumer processes. ``postmaster``: a private cluster's pid."""

    def __init__(self, db: Database, consumer: str, postmaster: int | None = None) -> None:
        self.db, self.consumer, self.postmaster = db, consumer, postmaster
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.consumers: list[int] = []
        self.begin: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        self.samples: list[dict[str, Any]] = []
        self.backends_seen: set[int] = set()
        self.conn: Any = None
        self.thread = threading.Thread(target=self._run, name="pgstats", daemon=True)

    def __enter__(self) -> Sampler:
        import psycopg

        self.conn = psycopg.connect(dbname="postgres", autocommit=True, **databases.PG)
        self.own_pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.unlisten = processes.listen(self._started)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.unlisten()
        with contextlib.suppress(Exception):
            if self.begin is not None and self.end is None and exc[0] is None:
                self._close_window()
        self.stopping.set()
        self.thread.join()
        self.conn.close()

    # The window ------------------------------------------------------------------------------

    def _started(self, name: str, proc: Any) -> None:
        """``processes.start`` started ``proc``: a consumer opens the window, anything after
        the consumers closes it."""
        if name == self.consumer and self.end is None:
            if self.begin is None:
                self.begin = self._mark()
            with self.lock:
                self.consumers.append(proc.pid)
        elif self.begin is not None and self.end is None:
            self._close_window()

    def _close_window(self) -> None:
        deadline = time.monotonic() + 3  # the consumers' backends flush their stats as they go
        while time.monotonic() < deadline:
            with self.lock:
                rows = self.conn.execute(ACTIVITY_SQL, [self.db.name]).fetchall()
            if not {row[0] for row in rows} & self.backends_seen:
                break
            time.sleep(0.02)
        self.end = self._mark()

    def _mark(self) -> dict[str, Any]:
        with self.lock:
            self.conn.execute("SELECT pg_stat_clear_snapshot()")
            row = self.conn.execute(COUNTERS_SQL, [self.db.name]).fetchone()
            counters = {k: int(v or 0) for k, v in zip(WAL + DB, row, strict=True)}
            return {"t": time.monotonic(), "counters": counters,
                    "server": self._server_cpu(), "own": proc_cpu(self.own_pid)}  # fmt: skip

    def _server_cpu(self) -> float | None:
        return server_cpu(self.postmaster) if self.postmaster else None

    # Sampling --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self.stopping.wait(INTERVAL):
            if self.begin is None or self.end is not None:
                continue
            with contextlib.suppress(Exception), self.lock:
                self.samples.append(self._sample())

    def _sample(self) -> dict[str, Any]:
        rows = self.conn.execute(ACTIVITY_SQL, [self.db.name]).fetchall()
        states: dict[int, str] = {}
        backends: dict[int, float | None] = {}
        for pid, state, kind, event, query in rows:
            if state == "idle" and (query or "").upper().startswith("LISTEN"):
                continue  # a LISTEN connection: idle by design
            states[pid] = category(state, kind, event)
            self.backends_seen.add(pid)
            if not self.postmaster:
                backends[pid] = proc_cpu(pid)
        return {
            "t": time.monotonic(),
            "states": states,
            "server": self._server_cpu(),
            "own": proc_cpu(self.own_pid),
            "backends": backends,
            # a consumer gone reads 0: left out
            "consumers": {pid: processes.tree_cpu_seconds(pid) or None for pid in self.consumers},
        }

    # The figures -----------------------------------------------------------------------------

    def summary(self, done: int, rate: float) -> dict[str, Any]:
        """Per task (``done`` tasks, all the window's counters) and per second of the samples'
        span; the server's CPU per task is its share of a core ÷ ``rate`` (tasks/s), both
        while the consumers drained."""
        out: dict[str, Any] = {"done": done, "samples": 0, "waits": {}}
        if self.begin is None or self.end is None:
            return out
        per = max(done, 1)
        delta = {k: self.end["counters"][k] - self.begin["counters"][k] for k in WAL + DB}
        out.update({f"{k}_per_task": v / per for k, v in delta.items()})
        if self.postmaster and self.begin["server"] is not None and self.end["server"]:
            cpu = self.end["server"] - self.begin["server"]  # start-up and stop included
            out["server_cpu_seconds"] = cpu - _delta(self.begin["own"], self.end["own"])
        window = [s for s in self.samples if s["states"]]
        out["samples"] = len(window)
        # Backends idle in every sample (a consumer's heartbeat and scheduler connections) are
        # left out of the waits: they would only dilute what the working ones do.
        seen: dict[int, set[str]] = {}
        for sample in window:
            for pid, state in sample["states"].items():
                seen.setdefault(pid, set()).add(state)
        idle = {pid for pid, states in seen.items() if all(_waits_on_client(s) for s in states)}
        if idle == set(seen):
            idle = set()  # all of them: then that is what they did
        out["idle_backends"] = len(idle)
        out["waits"] = dict(
            Counter(
                state
                for sample in window
                for pid, state in sample["states"].items()
                if pid not in idle
            )
        )
        span = window[-1]["t"] - window[0]["t"] if len(window) > 1 else 0.0
        if span <= 0:
            return out
        first, last = window[0], window[-1]
        if not self.postmaster:
            out["server_cpu"] = _spread(window, "backends") / span
        elif first["server"] is not None and last["server"] is not None:
            own = _delta(first["own"], last["own"])
            out["server_cpu"] = (last["server"] - first["server"] - own) / span
        if out.get("server_cpu") is not None and rate == rate and rate > 0:
            out["server_us_per_task"] = out["server_cpu"] / rate * 1e6
        out["consumer_cpu"] = _spread(window, "consumers") / span
        return out


def _delta(a: float | None, b: float | None) -> float:
    return (b - a) if a is not None and b is not None else 0.0


def _spread(window: list[dict[str, Any]], key: str) -> float:
    """Sum over the processes in ``window``'s samples of their last CPU time minus their
    first."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for sample in window:
        for pid, cpu in sample[key].items():
            if cpu is not None:
                first.setdefault(pid, cpu)
                last[pid] = max(cpu, last.get(pid, cpu))
    return sum(last[pid] - first[pid] for pid in last)


# Reading the figures --------------------------------------------------------------------------

WAL_WAITS = ("IO:WALSync", "IO:WALWrite", "IO:WALInitSync", "IO:WALInitWrite", "LWLock:WALWrite",
             "LWLock:WALInsert", "LWLock:WALBufMapping")  # fmt: skip


def _waits_on_client(name: str) -> bool:
    return name.startswith("Client:") or (":" not in name and name != "CPU")


def groups(waits: dict[str, int]) -> dict[str, float]:
    """Shares of the backends' samples: on CPU, WAL, locks, other I/O, waiting on the client."""
    total = sum(waits.values()) or 1
    share: Counter[str] = Counter()
    for name, count in waits.items():
        if name == "CPU":
            group = "CPU"
        elif name in WAL_WAITS:
            group = "WAL"
        elif name.startswith(("Lock:", "LWLock:")):
            group = "locks"
        elif _waits_on_client(name):  # Client:*, or idle and waiting on nothing
            group = "client"
        elif name.startswith("IO:"):
            group = "I/O"
        else:
            group = "other"
        share[group] += count / total
    return dict(share)


def top_waits(waits: dict[str, int], n: int = 3) -> str:
    total = sum(waits.values())
    if not total:
        return "–"
    return ", ".join(f"{name} {count / total:.0%}" for name, count in Counter(waits).most_common(n))


def bound(stats: dict[str, Any], consumer_cores: int = 1) -> str:
    """What one configuration's figures point to: the database's CPU (≥ 90 % of its core), the
    WAL or locks (their waits half the working backends' samples or more), the consumers' CPU
    (≥ 90 % of ``consumer_cores``), the client (the backends mostly wait on it: slow tasks, a
    busy consumer), else round trips (a consumer and its backend taking turns)."""
    cpu, consumers = stats.get("server_cpu"), stats.get("consumer_cpu")
    share = groups(stats.get("waits", {}))
    if stats.get("samples", 0) < MIN_SAMPLES:
        return f"– ({stats.get('samples', 0)} samples)"
    if cpu is not None and cpu >= 0.9:
        return f"database CPU ({cpu:.0%} of a core)"
    if not share:
        return "–"
    for group in ("WAL", "locks"):
        if share.get(group, 0) >= 0.5:
            return f"{group} ({share[group]:.0%} of samples)"
    if consumers is not None and consumers >= 0.9 * consumer_cores:
        return f"consumers' CPU ({consumers:.0%} of a core)"
    client = share.get("client", 0)
    if client >= 0.5:
        return f"not the database (its backends wait on the client {client:.0%})"
    return f"round trips (backends active {share.get('CPU', 0):.0%}, waiting {client:.0%})"


SATURATED = ("database CPU", "WAL", "locks")


def saturation(
    configs: dict[str, dict[str, Any]], db_core: str, consumer_core: str, consumer_cores: int = 1
) -> str:
    """The one line naming where the database saturates: the first configuration whose figures
    point to the database (its CPU, WAL, locks); else the resource nearest to it, and at what
    rate of each workload its CPU would fill its core (1 ÷ its CPU per task)."""
    measured = {n: s for n, s in configs.items() if s.get("samples", 0) >= MIN_SAMPLES}
    if not measured:
        return f"saturates at: – (no configuration with {MIN_SAMPLES} samples or more)"
    for name, stats in measured.items():
        what = bound(stats, consumer_cores)
        if what.startswith(SATURATED):
            return (
                f"saturates at: {what}, first at {name} ({stats.get('rate', 0):,.0f}/s): "
                f"server CPU {_pct(stats.get('server_cpu'))} of {db_core}, consumers "
                f"{_pct(stats.get('consumer_cpu'))} of {consumer_core}; waits: "
                f"{top_waits(stats['waits'])}."
            )
    name, stats = max(measured.items(), key=lambda item: item[1].get("server_cpu") or 0.0)
    share = groups(stats["waits"])
    busiest_consumers = max(measured.items(), key=lambda i: i[1].get("consumer_cpu") or 0.0)
    cpu = stats.get("server_cpu") or 0.0
    nearest = max({"its CPU": cpu, "the WAL": share.get("WAL", 0.0),
                   "locks": share.get("locks", 0.0)}.items(), key=lambda i: i[1])[0]  # fmt: skip
    ceilings = []
    for workload, label in (("noop", "no-op"), ("sleep", "10 ms")):
        runs = [s for n, s in measured.items() if n.startswith(workload) and s.get("rate")]
        fastest = max(runs, key=lambda s: s["rate"], default=None)
        if fastest and fastest.get("server_us_per_task"):
            per = fastest["server_us_per_task"]
            ceilings.append(f"~{1e6 / per:,.0f} {label} tasks/s ({per:,.0f} µs each)")
    return (
        f"saturates at: not reached on this machine. The database is busiest at {name}: "
        f"server CPU {_pct(cpu)} of {db_core}, its backends waiting on the client "
        f"{_pct(share.get('client', 0.0))} of samples, on the WAL "
        f"{_pct(share.get('WAL', 0.0))}, on locks {_pct(share.get('locks', 0.0))}; the "
        f"consumers reach {_pct(busiest_consumers[1].get('consumer_cpu'))} of {consumer_core} "
        f"({busiest_consumers[0]}). Nearest: {nearest}"
        + (
            f"; at its CPU per task, {db_core} would be full at {' or '.join(ceilings)}."
            if ceilings
            else "."
        )
    )


def _pct(value: float | None) -> str:
    return f"{value:.0%}" if value is not None and value == value else "n/a"
