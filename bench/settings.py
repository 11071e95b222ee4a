"""Settings of the Firefly side of the benchmarks: the engine, the dashboard, the bench tasks.

The database comes from the environment (see ``bench/dbconf.py``); extra settings as JSON in
``FIREFLY_BENCH_OVERRIDES``. Nothing here tunes Firefly: every ``FIREFLY_*`` is its default,
but for the schedules of the "fffeat" system (``FIREFLY_BENCH_FEATURES=1``), below.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.dbconf import databases

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "firefly-bench-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_filters",
    "firefly_tasks",
    "firefly_admin",
    "bench.benchapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
DATABASES = databases()
if "queue" in DATABASES:  # the "ffqueue" system: Firefly on a database of its own
    FIREFLY_DATABASE = "queue"
    DATABASE_ROUTERS = ["firefly_tasks.routers.FireflyRouter"]
# FIREFLY_BENCH_FEATURES=1 (drain.py's "fffeat" system, Firefly with its features on): ten
# schedules of a no-op task, every second, so that the consumer's scheduler thread enqueues
# ten ticks a second while it drains. Every minute would tick in no drain: the tables are
# emptied before each drain, and an interval's first tick comes one interval after the
# consumer creates the schedule.
if os.environ.get("FIREFLY_BENCH_FEATURES") == "1":
    FIREFLY_SCHEDULES = {
        f"bench-tick-{i}": {"task": "bench.benchapp.tasks.tick", "every": 1} for i in range(10)
    }
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"firefly_tasks": {"handlers": ["console"], "level": "WARNING"}},
}

globals().update(json.loads(os.environ.get("FIREFLY_BENCH_OVERRIDES", "{}")))
