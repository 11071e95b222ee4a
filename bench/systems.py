"""The systems a benchmark compares (Firefly, its predecessors, the peers, raw SQL): how each
runs, on which databases, from which virtualenv (a peer's is built from PyPI on first use)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from bench.databases import REDIS, VENDORS, Database
from bench.log import log
from bench.paths import REPO, VENVS

# Virtualenvs of the peers -------------------------------------------------------------------

DJANGO_VERSION = "5.2.19"  # the peers run on the Django that Firefly's checkout runs on
PEER_REQUIREMENTS = {
    "ff04": [
        "django-firefly-tasks==0.4.0",
        f"Django=={DJANGO_VERSION}",
        "psycopg[binary]==3.3.9",
        "mysqlclient==2.3.1",
    ],
    "dtdb": [
        "django-tasks-db[compat]==0.13.0",
        "django-tasks==0.12.0",
        f"Django=={DJANGO_VERSION}",
        "psycopg[binary]==3.3.9",
        "mysqlclient==2.3.1",
    ],
    "pgq": ["pgqueuer[asyncpg]==1.6.0"],
    "procrastinate": [
        "procrastinate[django]==3.10.0",
        f"Django=={DJANGO_VERSION}",
        "psycopg[binary]==3.3.9",
        "psycopg-pool==3.3.3",
    ],
    "djq2": [
        "django-q2==1.11.1",
        f"Django=={DJANGO_VERSION}",
        "psycopg[binary]==3.3.9",
        "mysqlclient==2.3.1",
    ],
    "huey": [
        "huey==3.5.4",
        "peewee==4.5.3",
        "redis==8.2.0",
        "psycopg2-binary==2.9.13",  # peewee's PostgreSQL driver
        "psycopg[binary]==3.3.9",  # PostgresHuey's
        "mysqlclient==2.3.1",
    ],
    "celery": ["celery[redis]==5.7.0", "kombu==5.7.0", "redis==8.2.0"],
}


class Unavailable(Exception):
    """A system cannot run here (its virtualenv could not be built, or wrong database)."""


def venv_python(name: str) -> str:
    """The Python of a peer's virtualenv, created on first use (a minute, once)."""
    requirements = PEER_REQUIREMENTS[name]
    root = VENVS / name
    python = root / "bin" / "python"
    marker = root / "bench-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return str(python)
    log(f"building virtualenv {root} ({', '.join(requirements)})")
    shutil.rmtree(root, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *requirements],
            capture_output=True,
            text=True,
        )
        if pip.returncode:
            raise Unavailable(f"pip could not install {requirements}:\n{pip.stderr[-2000:]}")
    except (OSError, subprocess.CalledProcessError) as exc:
        raise Unavailable(f"could not build the {name} virtualenv: {exc}") from exc
    marker.write_text(wanted)
    return str(python)


# Systems ------------------------------------------------------------------------------------


# The agent module of each kind of system (bench/agent.py for "django").
AGENTS = {
    "pgq": "bench.pgq_agent",
    "raw": "bench.raw",
    "procrastinate": "bench.procrastinate_agent",
    "djq2": "bench.djq2_agent",
    "huey": "bench.huey_agent",
    "celery": "bench.celery_agent",
}
# How a drain learns when tasks completed: from the system's own table ("table": the agent's
# ``stats``), from what its consumer prints ("consumer": pgqueuer, raw SQL), or by watching the
# queue empty ("watch": the agent's ``watch``, for consumers that record no completion time).
COMPLETION = {"pgq": "consumer", "raw": "consumer", "djq2": "watch", "huey": "watch",
              "celery": "watch"}  # fmt: skip


@dataclass
class System:
    key: str
    label: str
    kind: str  # "django", "pgq", "raw", or one of the other peers' (see AGENTS)
    vendors: tuple[str, ...] = VENDORS
    venv: str | None = None
    settings: str | None = None
    burst: bool = True  # the consumer exits by itself once the queue is empty
    concurrency: bool = False  # the consumer has a --concurrency of its own
    admin: bool = False
    pool: str = ""  # Firefly's --pool, when not its default
    queue_db: bool = False  # Firefly with FIREFLY_DATABASE on a database of its own
    # Firefly with its features in use (FIREFLY_BENCH_FEATURES: bench/settings.py's schedules,
    # bench/agent_adapters.py's FeaturesAdapter).
    features: bool = False
    # Firefly's settings changed for this variant (FIREFLY_BENCH_OVERRIDES: bench/settings.py).
    overrides: dict[str, Any] = field(default_factory=dict)
    # The peer's own settings (FIREFLY_BENCH_PEER, read by bench/peer_agent.py) and the
    # arguments added to its consumer's command: what its tuned variant sets.
    options: dict[str, Any] = field(default_factory=dict)
    worker_args: tuple[str, ...] = ()
    # A variant tuned on the consumer's side only: the system whose enqueue is the very same.
    enqueues_as: str = ""

    @property
    def firefly(self) -> bool:
        """This checkout's Firefly, whatever its variant."""
        return (
            self.key == "firefly"
            or bool(self.pool)
            or self.queue_db
            or self.features
            or bool(self.overrides)
        )

    @property
    def python(self) -> str:
        return venv_python(self.venv) if self.venv else sys.executable

    @property
    def agent_module(self) -> str:
        return AGENTS.get(self.kind, "bench.agent")

    @property
    def completion(self) -> str:
        return COMPLETION.get(self.kind, "table")

    def env(self, db: Database, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(db.env())
        env["PYTHONPATH"] = str(REPO)
        env["PYTHONUNBUFFERED"] = "1"
        env["FIREFLY_BENCH_SYSTEM"] = (
            "firefly" if self.pool or self.queue_db or self.overrides else self.key
        )
        if self.queue_db:
            env["FIREFLY_BENCH_QUEUE_DB"] = "1"
        env.pop("FIREFLY_BENCH_FEATURES", None)
        if self.features:
            env["FIREFLY_BENCH_FEATURES"] = "1"
        if self.settings:
            env["DJANGO_SETTINGS_MODULE"] = self.settings
        if self.options:
            env["FIREFLY_BENCH_PEER"] = json.dumps(self.options)
        if self.overrides:
            env["FIREFLY_BENCH_OVERRIDES"] = json.dumps(self.overrides)
        env.update(extra)
        return env

    def consumer_cmd(
        self, workload: str, concurrency: int | None = None, burst: bool = True
    ) -> list[str]:
        """The system's own consumer command (Django systems)."""
        if self.firefly:
            cmd = [self.python, "-m", "django", "consume_tasks"]
            if self.pool:
                cmd += ["--pool", self.pool]
            if concurrency:
                cmd += ["--concurrency", str(concurrency)]
            return cmd + (["--burst"] if burst else [])
        if self.key == "ff04":
            return [self.python, "-m", "django", "consume_tasks"]
        if self.key == "dtdb":
            cmd = [self.python, "-m", "django", "db_worker", "--no-startup-delay"]
            return cmd + (["--batch"] if burst else [])
        if self.kind == "procrastinate":
            cmd = [self.python, "-m", "django", "procrastinate", "worker", "--concurrency",
                   str(concurrency or self.options.get("concurrency", 1))]  # fmt: skip
            return cmd + (["--one-shot"] if burst else [])
        if self.kind == "djq2":  # no burst mode: the drain watches the queue empty
            return [self.python, "-m", "django", "qcluster"]
        if self.kind == "huey":
            return [self.python, "-m", "huey.bin.huey_consumer", "bench.peers.hueyapp.huey",
                    *self.worker_args]  # fmt: skip
        if self.kind == "celery":
            return [self.python, "-m", "celery", "-A", "bench.peers.celeryapp", "worker",
                    "--loglevel", "WARNING", *self.worker_args]  # fmt: skip
        raise ValueError(self.key)


FIREFLY = System("firefly", "Firefly", "django", settings="bench.settings", concurrency=True,
                 admin=True)  # fmt: skip
FFPROC = System("ffproc", "Firefly, --pool process", "django", settings="bench.settings",
                concurrency=True, pool="process")  # fmt: skip
# The same consumer with the features of the other issues in use: its scheduler thread
# enqueueing ticks, its tasks with a timeout, a unique key and tags (drain.py only).
FFFEAT = System("fffeat", "Firefly, features on", "django", settings="bench.settings",
                concurrency=True, features=True)  # fmt: skip
# The same consumer without claims sent ahead (drain.py only; they are on by default).
FFSERIAL = System("ffserial", "Firefly, FIREFLY_CLAIM_AHEAD = False", "django",
                  settings="bench.settings", concurrency=True, vendors=("postgres", "mariadb"),
                  overrides={"FIREFLY_CLAIM_AHEAD": False})  # fmt: skip
FF04 = System("ff04", "django-firefly-tasks 0.4.0", "django", venv="ff04",
              settings="bench.peers.ff04.settings", burst=False, admin=True)  # fmt: skip
DTDB = System("dtdb", "django-tasks-db 0.13.0", "django", venv="dtdb",
              settings="bench.peers.dtdb.settings", admin=True)  # fmt: skip
PGQ = System("pgq", "pgqueuer 1.6.0 (asyncpg, batch 100)", "pgq", vendors=("postgres",),
             venv="pgq", concurrency=True)  # fmt: skip
RAW1 = System("raw1", "raw SQL, 1 task per claim + ack", "raw")
RAW100 = System("raw100", "raw SQL, claim 100 / ack 100", "raw")
RAWSTMT = System("rawstmt", "raw SQL, ack 100 + claim 100 in 1 statement", "raw",
                 vendors=("postgres",))  # fmt: skip
FFQUEUE = System("ffqueue", "Firefly, queue on a database of its own", "django",
                 settings="bench.settings", concurrency=True, queue_db=True)  # fmt: skip
PROCRASTINATE = System("procrastinate", "Procrastinate 3.10.0 (Django contrib), -c 1",
                       "procrastinate", vendors=("postgres",), venv="procrastinate",
                       settings="bench.peers.procr.settings", concurrency=True)  # fmt: skip
PROCRASTINATE10 = System("procrastinate10", "Procrastinate 3.10.0, --concurrency 10",
                         "procrastinate", vendors=("postgres",), venv="procrastinate",
                         settings="bench.peers.procr.settings", concurrency=True,
                         options={"concurrency": 10}, enqueues_as="procrastinate")  # fmt: skip
DJQ2 = System("djq2", "django-q2 1.11.1 (ORM broker)", "djq2", venv="djq2",
              settings="bench.peers.djq2.settings", burst=False)  # fmt: skip
# django-q2's docs: bulk "can improve performance", poll is the ORM broker's idle sleep,
# save_limit -1 stores no successful result; queue_limit holds a whole bulk in memory; no
# INFO line for every task. And Django's persistent connections (CONN_MAX_AGE = None): its
# ORM broker otherwise connects anew for every poll, dequeue and enqueue.
DJQ2_TUNED_CLUSTER = {"workers": 2, "bulk": 100, "queue_limit": 200, "poll": 0.05,
                      "save_limit": -1, "log_level": "WARNING"}  # fmt: skip
DJQ2TUNED = System("djq2tuned", "django-q2 1.11.1, tuned", "djq2", venv="djq2",
                   settings="bench.peers.djq2.settings", burst=False,
                   options={"q_cluster": DJQ2_TUNED_CLUSTER, "conn_max_age": None})  # fmt: skip
HUEY = System("huey", "Huey 3.5.4 (SqliteHuey)", "huey", vendors=("sqlite",), venv="huey",
              burst=False, options={"storage": "sqlite"})  # fmt: skip
HUEYSQL = System("hueysql", "Huey 3.5.4 (SqlHuey, peewee 4.5.3)", "huey",
                 vendors=("postgres", "mariadb"), venv="huey", burst=False,
                 options={"storage": "sql"})  # fmt: skip
HUEYPG = System("hueypg", "Huey 3.5.4 (PostgresHuey, LISTEN/NOTIFY)", "huey",
                vendors=("postgres",), venv="huey", burst=False,
                options={"storage": "postgres"})  # fmt: skip
HUEYREDIS = System("hueyredis", "Huey 3.5.4 (RedisHuey)", "huey", vendors=(REDIS,),
                   venv="huey", burst=False, options={"storage": "redis"})  # fmt: skip
# Huey's docs: more workers (threads, its default kind) for throughput; --no-periodic spares
# the scheduler's periodic-task check; --quiet, no INFO lines for every task.
HUEY_TUNED_ARGS = ("--workers", "4", "--no-periodic", "--quiet")
HUEY4 = System("huey4", "Huey 3.5.4 (SqliteHuey), tuned", "huey", vendors=("sqlite",),
               venv="huey", burst=False, options={"storage": "sqlite"},
               worker_args=HUEY_TUNED_ARGS, enqueues_as="huey")  # fmt: skip
HUEYREDIS4 = System("hueyredis4", "Huey 3.5.4 (RedisHuey), tuned", "huey", vendors=(REDIS,),
                    venv="huey", burst=False, options={"storage": "redis"},
                    worker_args=HUEY_TUNED_ARGS, enqueues_as="hueyredis")  # fmt: skip
CELERY = System("celery", "Celery 5.7.0 (Redis), prefork -c 1", "celery", vendors=(REDIS,),
                venv="celery", burst=False,
                worker_args=("--pool", "prefork", "--concurrency", "1"))  # fmt: skip
# Celery's "Optimizing" guide: a high prefetch multiplier for many short tasks; and the
# worker's --without-gossip/-mingle/-heartbeat: a lone worker has nobody to exchange them with.
CELERYTHREADS = System("celerythreads", "Celery 5.7.0 (Redis), --pool threads, tuned", "celery",
                       vendors=(REDIS,), venv="celery", burst=False,
                       worker_args=("--pool", "threads", "--concurrency", "1",
                                    "--prefetch-multiplier", "64", "--without-gossip",
                                    "--without-mingle", "--without-heartbeat"),
                       enqueues_as="celery")  # fmt: skip
PEERS = [PROCRASTINATE, PROCRASTINATE10, DJQ2, DJQ2TUNED, HUEY, HUEY4, HUEYSQL, HUEYPG,
         HUEYREDIS, HUEYREDIS4, CELERY, CELERYTHREADS]  # fmt: skip
SYSTEMS = [FIREFLY, FFPROC, FFQUEUE, FF04, DTDB, PGQ, *PEERS, RAW1, RAW100, RAWSTMT]
# Systems of drain.py alone, kept out of SYSTEMS (every script's --systems and its default).
DRAIN_ONLY = [FFFEAT, FFSERIAL]
RAW_MODES = {"raw1": "single", "raw100": "batch", "rawstmt": "onestatement"}
