"""django-tasks-db (django-tasks' database backend) on Django 5.2 via the django-tasks
backport, with its defaults."""

from bench.peers.common_settings import *  # noqa: F403
from bench.peers.common_settings import CONTRIB_APPS

INSTALLED_APPS = [*CONTRIB_APPS, "django_tasks", "django_tasks_db", "bench.peers.dtdb"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
