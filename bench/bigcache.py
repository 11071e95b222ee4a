"""The big table of ``bench/bigtable.py``, seeded once and cached between runs.

PostgreSQL: the seeded database is kept on the server as a template database,
``ffbench_big_tpl_<system>_<rows>_<hash8>`` (``IS_TEMPLATE``, ``ALLOW_CONNECTIONS false``; what
its seed reported, and when, in its ``COMMENT``). Each run creates its working database with
``CREATE DATABASE ... TEMPLATE`` (``STRATEGY FILE_COPY``: a copy of the files) and drops only
that one. SQLite: the seeded file, checkpointed, kept as
``bench/.cache/big_<system>_<rows>_<hash8>.sqlite3`` (its seed in ``...sqlite3-info.json``
beside it), copied for each run. MariaDB has no template databases: its big table is seeded
anew for each run, as before.

``hash8`` fingerprints what the seeded tables depend on: the migrations of the system's apps
(file names and contents), the seeding code (``bench/agent_bigseed.py``,
``bench/agent_adapters.py``, the workloads' module), a peer's pinned requirements, and the
number of recent rows. A new fingerprint builds a new template and drops the system's
templates of the same size built with another one. The rows' times are fixed when a template
is built: one ``H`` hours old shows its newest tenth ``H`` hours further in the past (the
report gives the age), so a template older than ``max_age`` hours is rebuilt too.

    python3 bench/bigtable.py --rebuild      # build the templates of this run anew
    python3 bench/bigtable.py --drop-cache   # drop every cached big table of --db, and exit
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench import measure
from bench.databases import Database, server
from bench.log import log
from bench.paths import BENCH, REPO
from bench.processes import run_json
from bench.systems import PEER_REQUIREMENTS, System

CACHE = BENCH / ".cache"  # ignored by git: *.sqlite3, *.sqlite3-* (.gitignore)
PREFIX = "ffbench_big_tpl_"
SEED_TIMEOUT = 4 * 3600.0  # seconds: ten million rows on a busy two-core machine
FIREFLY_APPS = ("firefly_tasks", "firefly_admin")
SEED_CODE = ("agent_bigseed.py", "agent_adapters.py")

_rebuilt: set[str] = set()  # built by this process: --rebuild builds each once


def cache_key(system: System) -> str | None:
    """Which seeded tables a system uses (Firefly's variants share Firefly's); None: not
    cached (Firefly with its queue in a database of its own)."""
    if system.queue_db:
        return None
    return "firefly" if system.firefly else system.key


def fingerprint(system: System, rows: int, recent: int) -> str:
    key = cache_key(system) or system.key
    files: list[Path] = []
    if key == "firefly":
        for app in FIREFLY_APPS:
            files += sorted((REPO / app / "migrations").glob("*.py"))
        files.append(BENCH / "benchapp" / "tasks.py")
    else:
        files += sorted((BENCH / "peers" / key).glob("*.py"))
    files += [BENCH / name for name in SEED_CODE]
    digest = hashlib.sha256(f"{key} {rows} {recent}\n".encode())
    digest.update("\n".join(PEER_REQUIREMENTS.get(system.venv or "", [])).encode())
    for path in files:
        digest.update(f"\n{path.relative_to(REPO)}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def open_big(
    system: System, vendor: str, rows: int, recent: int, *, rebuild: bool, max_age: float
) -> tuple[Database, dict[str, Any]]:
    """A working database holding the system's big table: a copy of the cached one (built
    first if missing, stale, older than ``max_age`` hours (0: any age) or ``rebuild``), or,
    on MariaDB, one seeded now. Returns it and what its seed reported, with how it came."""
    key = cache_key(system)
    if vendor == "mariadb" or key is None:
        began = time.monotonic()
        db = Database(vendor, "big")
        seed = _seed(system, db, rows, recent)
        return db, {"cached": False, "seed": seed, "seconds": time.monotonic() - began}
    fp = fingerprint(system, rows, recent)
    stem = f"{key}_{rows}_{fp}"
    info = _pg_info(PREFIX + stem) if vendor == "postgres" else _sqlite_info(stem)
    reason = ""
    if info is None:
        reason = "none cached"
    elif rebuild and stem not in _rebuilt:
        reason = "--rebuild"
    elif max_age and time.time() - info["built"] > max_age * 3600:
        reason = f"older than {max_age:g} h"
    built_now = bool(reason)
    if built_now:
        log(f"  big table of {key} on {vendor}, {rows:,} rows: building it ({reason})")
        info = _build(system, vendor, rows, recent, stem)
        _rebuilt.add(stem)
    assert info is not None
    began = time.monotonic()
    if vendor == "postgres":
        db = Database(vendor, "big", template=PREFIX + stem)
    else:
        db = Database(vendor, "big", template=str(_sqlite_path(stem)))
    copied = time.monotonic() - began
    age = time.time() - info["built"]
    log(f"  big table {stem} ({'built now' if built_now else f'{age / 3600:.1f} h old'}), "
        f"copied in {copied:.1f}s")  # fmt: skip
    return db, {
        "cached": True,
        "built_now": built_now,
        "name": PREFIX + stem if vendor == "postgres" else str(_sqlite_path(stem)),
        "age_seconds": age,
        "build_seconds": info["build_seconds"],
        "copy_seconds": copied,
        "seed": info["seed"],
    }


def drop_cache(vendors: list[str]) -> list[str]:
    """Drop every cached big table of ``vendors``; return their names."""
    dropped = []
    if "postgres" in vendors:
        for name in _pg_templates():
            _pg_drop(name)
            dropped.append(name)
    if "sqlite" in vendors and CACHE.is_dir():
        for path in sorted(CACHE.glob("big_*.sqlite3*")):  # the files, their info, leftovers
            path.unlink()
            if path.suffix == ".sqlite3":
                dropped.append(str(path))
    return dropped


def _seed(system: System, db: Database, rows: int, recent: int) -> dict[str, Any]:
    measure.prepare(system, db)
    log(f"  seeding {rows:,} finished rows ({system.key} on {db.vendor})")
    cmd = [system.python, "-m", system.agent_module, "bigseed",
           json.dumps({"n": rows, "recent": recent})]  # fmt: skip
    seed: dict[str, Any] = run_json(cmd, system.env(db), f"{system.key}-{db.vendor}",
                                    timeout=SEED_TIMEOUT)  # fmt: skip
    log(f"  seeded in {seed['total_seconds']:.0f}s")
    return seed


def _build(system: System, vendor: str, rows: int, recent: int, stem: str) -> dict[str, Any]:
    """Seed a database, then keep it as the cached big table ``stem`` (replacing one of that
    name, and dropping the system's others of that size)."""
    began = time.monotonic()
    db = Database(vendor, "bigbuild")  # dropped at exit if the build does not finish
    seed = _seed(system, db, rows, recent)
    info = {"built": time.time(), "build_seconds": time.monotonic() - began, "seed": seed}
    size, _, _ = stem.rpartition("_")  # "<system>_<rows>": the same table, another fingerprint
    if vendor == "postgres":
        from psycopg import sql

        name = PREFIX + stem
        for old in _pg_templates():
            if old.startswith(f"{PREFIX}{size}_"):
                _pg_drop(old)
        with server(vendor) as conn:
            conn.execute(f'ALTER DATABASE "{db.name}" RENAME TO "{name}"')
            conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
            comment = sql.SQL("COMMENT ON DATABASE {} IS {}")
            conn.execute(comment.format(sql.Identifier(name), sql.Literal(json.dumps(info))))
        return info
    conn = sqlite3.connect(db.name)
    try:  # everything into the main file: only that one is copied
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    CACHE.mkdir(parents=True, exist_ok=True)
    for path in CACHE.glob(f"big_{size}_*.sqlite3*"):
        path.unlink()
    target = _sqlite_path(stem)
    partial = target.with_name(f"{target.name}-building-{os.getpid()}")
    shutil.move(db.name, partial)
    os.replace(partial, target)
    target.with_name(f"{target.name}-info.json").write_text(json.dumps(info))
    db.drop()
    return info


def _pg_templates() -> list[str]:
    with server("postgres") as conn:
        found = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY datname",
            [PREFIX.replace("_", r"\_") + "%"],
        ).fetchall()
    return [name for (name,) in found]


def _pg_info(name: str) -> dict[str, Any] | None:
    """What the template's build recorded; None if there is no such template (or one whose
    build did not record it: it is rebuilt)."""
    with server("postgres") as conn:
        row = conn.execute(
            "SELECT datistemplate, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datname = %s",
            [name],
        ).fetchone()
    if row is None or not row[0] or not row[1]:
        return None
    try:
        info: dict[str, Any] = json.loads(row[1])
    except ValueError:
        return None
    return info


def _pg_drop(name: str) -> None:
    log(f"  dropping cached big table {name}")
    with server("postgres") as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sqlite_path(stem: str) -> Path:
    return CACHE / f"big_{stem}.sqlite3"


def _sqlite_info(stem: str) -> dict[str, Any] | None:
    path = _sqlite_path(stem)
    meta = path.with_name(f"{path.name}-info.json")
    if not path.exists() or not meta.exists():
        return None
    try:
        info: dict[str, Any] = json.loads(meta.read_text())
    except ValueError:
        return None
    return info
