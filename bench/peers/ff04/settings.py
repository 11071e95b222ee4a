"""django-firefly-tasks 0.4.0 (the seed library), with its defaults."""

from bench.peers.common_settings import *  # noqa: F403
from bench.peers.common_settings import CONTRIB_APPS

INSTALLED_APPS = [*CONTRIB_APPS, "django_firefly_tasks", "bench.peers.ff04"]
