"""``DATABASES`` for every benchmark settings module (Firefly's and the peers').

The orchestrator creates a fresh database and passes it down in the environment:
``FIREFLY_BENCH_DB`` (sqlite, postgres or mariadb) and ``FIREFLY_BENCH_DB_NAME`` (database
name, or the SQLite file path). Pure Python, so it imports under any Django version.
"""

from __future__ import annotations

import os

VENDOR = os.environ.get("FIREFLY_BENCH_DB", "sqlite")
NAME = os.environ.get("FIREFLY_BENCH_DB_NAME", "/tmp/firefly-bench.sqlite3")

PG = {
    "HOST": os.environ.get("FIREFLY_BENCH_PG_HOST", "127.0.0.1"),
    "PORT": os.environ.get("FIREFLY_BENCH_PG_PORT", "5432"),
    "USER": os.environ.get("FIREFLY_BENCH_PG_USER", "postgres"),
    "PASSWORD": os.environ.get("FIREFLY_BENCH_PG_PASSWORD", ""),
}
MYSQL = {
    "HOST": os.environ.get("FIREFLY_BENCH_MYSQL_HOST", "127.0.0.1"),
    "PORT": os.environ.get("FIREFLY_BENCH_MYSQL_PORT", "3306"),
    "USER": os.environ.get("FIREFLY_BENCH_MYSQL_USER", "root"),
    "PASSWORD": os.environ.get("FIREFLY_BENCH_MYSQL_PASSWORD", ""),
}

# The same SQLite configuration for every system: what Firefly's docs recommend
# (WAL, synchronous=NORMAL, BEGIN IMMEDIATE, a generous busy timeout).
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}


def databases() -> dict:
    if VENDOR == "sqlite":
        return {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": NAME,
                "OPTIONS": dict(SQLITE_OPTIONS),
            }
        }
    if VENDOR == "postgres":
        # FIREFLY_BENCH_PG_PREPARE_THRESHOLD: let psycopg prepare statements run that many
        # times (Django's OPTIONS["prepare_threshold"]); unset, Django's default: never.
        threshold = os.environ.get("FIREFLY_BENCH_PG_PREPARE_THRESHOLD")
        options = {"prepare_threshold": int(threshold)} if threshold else {}
        return {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": NAME,
                **PG,
                "OPTIONS": options,
            }
        }
    if VENDOR == "mariadb":
        return {
            "default": {
                "ENGINE": "django.db.backends.mysql",
                "NAME": NAME,
                **MYSQL,
                "OPTIONS": {"charset": "utf8mb4"},
            }
        }
    raise RuntimeError(f"FIREFLY_BENCH_DB is {VENDOR!r}; use sqlite, postgres or mariadb.")
