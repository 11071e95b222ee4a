"""django-q2 with its ORM broker on the benchmark database. Its defaults, save for the
system's own ``Q_CLUSTER`` keys and ``CONN_MAX_AGE`` (``FIREFLY_BENCH_PEER``, see
bench/systems.py: the tuned variant)."""

from bench.peer_agent import OPTIONS
from bench.peers.common_settings import *  # noqa: F403
from bench.peers.common_settings import CONTRIB_APPS

INSTALLED_APPS = [*CONTRIB_APPS, "django_q", "bench.peers.djq2"]
Q_CLUSTER = {"name": "bench", "orm": "default", **OPTIONS.get("q_cluster", {})}
# The ORM broker closes Django's connection before each read or write of the queue once it is
# older than CONN_MAX_AGE (Django's default, 0: a new connection each time).
if "conn_max_age" in OPTIONS:
    DATABASES["default"]["CONN_MAX_AGE"] = OPTIONS["conn_max_age"]  # noqa: F405
