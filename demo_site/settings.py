"""Settings of the Firefly demo: a stock Django project plus the lines marked "Firefly".

Copy the Firefly lines into your own settings: INSTALLED_APPS, the SQLite OPTIONS (on SQLite)
and LOGGING. Everything else Firefly reads has a default (docs/settings.md).

Development only: DEBUG is on and the secret key is public.
"""

from __future__ import annotations

import os
from pathlib import Path

from demo_site.database import database_from_url

# The repository: the demo's templates/ and static/ live at its top level.
BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("FIREFLY_DEMO_SECRET_KEY", "django-insecure-firefly-demo-only")
DEBUG = True
ALLOWED_HOSTS: list[str] = []  # With DEBUG, Django allows localhost, 127.0.0.1 and [::1].

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "firefly_tasks",  # Firefly: the engine (models, @task/@atask, consume_tasks).
    "firefly_admin",  # Firefly: the dashboard in the admin (needs nothing else).
    "demo_site.shop",  # The demo's tasks, page and commands.
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The admin and Firefly's dashboard in the browser's language (English or French).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Firefly: on SQLite, these three options let a consumer and the web server share the file
# (system checks firefly_tasks.W001-W003 ask for them; see docs/checks.md).
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "var" / "demo.sqlite3",
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",  # Take the write lock at BEGIN, never mid-task.
            "timeout": 20,  # Seconds to wait for that lock before "database is locked".
            "init_command": "PRAGMA journal_mode=WAL;",  # Readers and the writer don't block.
        },
    }
}
# PostgreSQL or MariaDB instead, e.g. postgres://user:password@127.0.0.1:5432/firefly_demo
if database_url := os.environ.get("FIREFLY_DEMO_DATABASE_URL"):
    DATABASES["default"] = database_from_url(database_url, sqlite=DATABASES["default"])

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", "English"), ("fr", "French")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Firefly: its log lines (task completed/failed, worker started/stopped) go to the console.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "firefly": {"format": "{asctime} {levelname} {name} {message}", "style": "{"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "firefly"},
    },
    "loggers": {
        "firefly_tasks": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# Firefly: optional. With FIREFLY_QUEUES set, scheduling onto any other queue fails at once.
FIREFLY_QUEUES = ["default", "emails"]
