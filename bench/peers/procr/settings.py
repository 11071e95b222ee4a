"""Procrastinate 3 through ``procrastinate.contrib.django`` (psycopg 3, PostgreSQL only), with
its defaults: the worker's ``--concurrency`` is the only thing the benchmarks set."""

from bench.peers.common_settings import *  # noqa: F403
from bench.peers.common_settings import CONTRIB_APPS

INSTALLED_APPS = [*CONTRIB_APPS, "procrastinate.contrib.django", "bench.peers.procr"]
