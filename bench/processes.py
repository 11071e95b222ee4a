"""The processes an orchestrator starts: start and stop them, read the JSON they print, and
their CPU time.

The scripts in ``bench/`` are orchestrators. They never import Django: they create a fresh
database, then drive each system through processes of its own Python — ``bench/agent.py``
(Django side: migrate, seed, schedule, time admin pages), the system's real consumer
command, ``bench/pgq_agent.py`` (pgqueuer), ``bench/procrastinate_agent.py``,
``bench/djq2_agent.py``, ``bench/huey_agent.py``, ``bench/celery_agent.py`` (the other peers)
or ``bench/raw.py`` (the raw SQL ceilings) — and read the answers those processes print as
JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.cleanup import on_exit
from bench.databases import Database
from bench.log import log
from bench.paths import REPO, RESULTS
from bench.systems import System

_procs: set[subprocess.Popen[Any]] = set()
# ``taskset -c`` of every process started while set (``pin``), and who hears of each start
# (``listen``): how bench/scaling.py pins consumers to a core and bench/pgstats.py learns
# when a drain's consumers start.
_cpus: str | None = None
_listeners: list[Callable[[str, subprocess.Popen[Any]], None]] = []


def _kill_all() -> None:
    for proc in list(_procs):
        stop(proc, grace=2)


on_exit(_kill_all)


def start(cmd: list[str], env: dict[str, str], name: str = "proc") -> subprocess.Popen[Any]:
    """Start a process of a benchmark. Its stderr goes to bench/results/logs/NAME.log, its
    stdout to a file of its own (never a pipe nobody reads: a chatty consumer would block).
    Under ``pin``, it runs through ``taskset -c CPUS`` (which execs it: same pid)."""
    if _cpus is not None:
        cmd = ["taskset", "-c", _cpus, *cmd]
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    err = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    err.write(f"\n$ {' '.join(cmd)}\n".encode())
    err.flush()
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True)
    proc._bench_files = (out, err)  # type: ignore[attr-defined]
    _procs.add(proc)
    for listener in list(_listeners):
        listener(name, proc)
    return proc


def pin(cpus: str | None) -> None:
    """Start every later process on these CPUs (``taskset -c`` syntax: "0", "0-1"); ``None``:
    wherever the kernel likes."""
    global _cpus
    _cpus = cpus


def listen(listener: Callable[[str, subprocess.Popen[Any]], None]) -> Callable[[], None]:
    """Call ``listener(name, proc)`` after every ``start``; returns what stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def stop(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM (graceful stop for every consumer here), then SIGKILL after ``grace``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            log(f"process {proc.pid} ignored SIGTERM for {grace}s: killed")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    # Its children too (a qcluster's or Celery's pool): it leads a session of its own.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    _procs.discard(proc)


def discard_output(proc: subprocess.Popen[Any]) -> None:
    for handle in proc._bench_files:  # type: ignore[attr-defined]
        handle.close()


def output_json(proc: subprocess.Popen[Any]) -> dict[str, Any]:
    """The JSON object a finished process printed last on stdout."""
    out, err = proc._bench_files  # type: ignore[attr-defined]
    out.seek(0)
    text = out.read().decode(errors="replace")
    out.close()
    err.close()
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(
        f"no JSON from process (exit {proc.returncode}): {' '.join(proc.args[:5])}...; "
        f"see bench/results/logs"
    )


def run_json(cmd: list[str], env: dict[str, str], name: str, timeout: float = 1800) -> Any:
    proc = start(cmd, env, name)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise
    finally:
        _procs.discard(proc)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:4])}... exited {proc.returncode}; see bench/results/logs/{name}.log"
        )
    return output_json(proc)


def agent(
    system: System, db: Database, command: str, *, env: dict[str, str] | None = None, **args: Any
) -> Any:
    """Run one command of the system's agent (``bench/agent.py`` for Django systems, else
    ``AGENTS``), with ``env`` added to its environment; return the JSON it printed."""
    cmd = [system.python, "-m", system.agent_module, command, json.dumps(args)]
    return run_json(cmd, system.env(db, **(env or {})), f"{system.key}-{db.vendor}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its living descendants (a qcluster's workers, Celery's
    pool, a process pool)."""
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):  # it exited meanwhile
            total += cpu_seconds(current)
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo += [int(child) for child in handle.read().split()]
    return total


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
