"""``DATABASES`` for every benchmark settings module (Firefly's and the peers').

The orchestrator creates a fresh database and passes it down in the environment:
``FIREFLY_BENCH_DB`` (sqlite, postgres, mariadb, or redis for the peers that keep their queue
there) and ``FIREFLY_BENCH_DB_NAME`` (database name, the SQLite file path, or the prefix of the
Redis keys). Pure Python, so it imports under any Django version, and in the peers' agents.
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
# The broker of the Redis peers (Celery, RedisHuey); with FIREFLY_BENCH_DB=redis, NAME is the
# prefix of their keys.
REDIS_URL = os.environ.get("FIREFLY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

# The same SQLite configuration for every system: what Firefly's docs recommend
# (WAL, synchronous=NORMAL, BEGIN IMMEDIATE, a generous busy timeout).
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}


# FIREFLY_BENCH_QUEUE_DB=1 (the "ffqueue" system): the bench database becomes the "queue" alias
# (FIREFLY_DATABASE), and "default" a second database beside it, "<name>_app".
SEPARATE_QUEUE = os.environ.get("FIREFLY_BENCH_QUEUE_DB") == "1"


def app_name(name: str) -> str:
    """The name of the application database beside the queue's ``name``."""
    return name.replace(".sqlite3", "_app.sqlite3") if name.endswith(".sqlite3") else f"{name}_app"


def databases() -> dict:
    if SEPARATE_QUEUE:
        return {"default": _database(app_name(NAME)), "queue": _database(NAME)}
    return {"default": _database(NAME)}


def _database(name: str) -> dict:
    if VENDOR == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            "OPTIONS": dict(SQLITE_OPTIONS),
        }
    if VENDOR == "postgres":
        # FIREFLY_BENCH_PG_PREPARE_THRESHOLD: let psycopg prepare statements run that many
        # times (Django's OPTIONS["prepare_threshold"]); unset, Django's default: never.
        threshold = os.environ.get("FIREFLY_BENCH_PG_PREPARE_THRESHOLD")
        options = {"prepare_threshold": int(threshold)} if threshold else {}
        return {"ENGINE": "django.db.backends.postgresql", "NAME": name, **PG, "OPTIONS": options}
    if VENDOR == "mariadb":
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            **MYSQL,
            "OPTIONS": {"charset": "utf8mb4"},
        }
    raise RuntimeError(f"FIREFLY_BENCH_DB is {VENDOR!r}; use sqlite, postgres or mariadb.")
