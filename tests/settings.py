"""Settings of the test suite. ``FIREFLY_TEST_DB`` picks the database: sqlite (default),
postgres or mariadb; it is never auto-detected.

Consumer processes started by tests use these settings too, with the real test database name
in ``FIREFLY_TEST_DB_NAME`` and extra settings as JSON in ``FIREFLY_TEST_OVERRIDES``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import django
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "firefly-tests-only"
DEBUG = False
# The tests log in many users: a fast hasher (Django's advice for test settings), not the
# deliberately slow production one.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A bare install: Django's apps, Firefly's two, the tests' own. firefly_admin needs nothing else
# (tests/admin/test_browser_live.py holds the dashboard to that).
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "firefly_tasks",
    "firefly_admin",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The admin, and the dashboard with it, in the browser's language (tests/admin/test_i18n.py).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Sends SECURE_CSP, empty (no header) unless a test sets it: Django's own on Django 6, a
    # test-only stand-in on Django 5.2, which has none.
    (
        "django.middleware.csp.ContentSecurityPolicyMiddleware"
        if django.VERSION >= (6, 0)
        else "tests.csp.ContentSecurityPolicyMiddleware"
    ),
]
SECURE_CSP: dict[str, list[str]] = {}
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
# English stays the default (LANGUAGE_CODE "en-us"); French is the language Firefly ships.
LANGUAGES = [("en", "English"), ("fr", "French")]

DB = os.environ.get("FIREFLY_TEST_DB", "sqlite")
CHILD_DB_NAME = os.environ.get("FIREFLY_TEST_DB_NAME")
# One test database per run, so that concurrent runs on one server never drop each other's.
TEST_DB_NAME = f"test_firefly_{os.getpid()}"


def _sqlite(path: str) -> dict[str, Any]:
    """A file-backed SQLite database, so that consumer processes started by the tests share it."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "TEST": {"NAME": path},
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


def _postgres(name: str | None, test_name: str) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name or "test",
        "USER": os.environ.get("FIREFLY_TEST_PG_USER", "postgres"),
        "HOST": os.environ.get("FIREFLY_TEST_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("FIREFLY_TEST_PG_PORT", "5432"),
        "TEST": {"NAME": test_name},
    }


def _mariadb(name: str | None, test_name: str) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.mysql",
        "NAME": name or "test",
        "USER": os.environ.get("FIREFLY_TEST_MYSQL_USER", "root"),
        "PASSWORD": os.environ.get("FIREFLY_TEST_MYSQL_PASSWORD", ""),
        "HOST": os.environ.get("FIREFLY_TEST_MYSQL_HOST", "127.0.0.1"),
        "PORT": os.environ.get("FIREFLY_TEST_MYSQL_PORT", "3306"),
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"NAME": test_name, "CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
    }


def _database(
    variable: str, engine: str, name: str | None, label: str, test_name: str
) -> dict[str, Any]:
    """The settings of a test database of ``engine`` (read from the environment ``variable``);
    ``label`` names its SQLite file."""
    if engine == "sqlite":
        return _sqlite(
            name or os.path.join(tempfile.gettempdir(), f"firefly-{label}-{os.getpid()}.sqlite3")
        )
    if engine == "postgres":
        return _postgres(name, test_name)
    if engine == "mariadb":
        return _mariadb(name, test_name)
    raise ImproperlyConfigured(f"{variable} is {engine!r}; use one of: sqlite, postgres, mariadb.")


DATABASES: dict[str, dict[str, Any]] = {
    "default": _database("FIREFLY_TEST_DB", DB, CHILD_DB_NAME, "test", TEST_DB_NAME),
}

# A second database for the tests of FIREFLY_DATABASE (tests/test_queue_database.py), created
# only when a test asks for it. FIREFLY_TEST_QUEUE_DB picks its engine: by default a second SQLite
# file (nothing else needed), a second PostgreSQL database in PostgreSQL's suite; CI also runs
# those tests on SQLite with a PostgreSQL queue.
QUEUE_DB = os.environ.get("FIREFLY_TEST_QUEUE_DB") or ("postgres" if DB == "postgres" else "sqlite")
QUEUE_DB_NAME = os.environ.get("FIREFLY_TEST_QUEUE_DB_NAME")
DATABASES["queue"] = _database(
    "FIREFLY_TEST_QUEUE_DB",
    QUEUE_DB,
    QUEUE_DB_NAME,
    "test-queue",
    f"test_firefly_queue_{os.getpid()}",
)
# Firefly's own router, except that the tests create Firefly's tables on both databases: the
# suite runs on "default", the queue database's tests (and their consumers) on "queue".
DATABASE_ROUTERS = ["tests.routers.BothDatabasesRouter"]
FIREFLY_DATABASE = os.environ.get("FIREFLY_TEST_QUEUE_ALIAS", "default")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"firefly_tasks": {"handlers": ["console"], "level": "WARNING"}},
}

globals().update(json.loads(os.environ.get("FIREFLY_TEST_OVERRIDES", "{}")))
