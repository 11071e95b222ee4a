"""Preparing the demo: the database and a superuser. ``scripts/demo`` and the tests run this
through ``manage.py setup_demo``; every step is safe to repeat."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections

DEMO_USERNAME = os.environ.get("FIREFLY_DEMO_USERNAME", "admin")
DEMO_PASSWORD = os.environ.get("FIREFLY_DEMO_PASSWORD", "admin")


def setup_demo(stdout: TextIO) -> None:
    create_sqlite_folder()
    call_command("migrate", interactive=False, verbosity=0)
    created = ensure_superuser(DEMO_USERNAME, DEMO_PASSWORD)
    stdout.write(
        f"Database ready: {describe_database()}\n"
        f"Demo superuser {'created' if created else 'ready'}: "
        f"username {DEMO_USERNAME!r}, password {DEMO_PASSWORD!r}\n"
    )


def create_sqlite_folder() -> None:
    config = settings.DATABASES[DEFAULT_DB_ALIAS]
    if str(config["ENGINE"]).endswith("sqlite3"):
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)


def ensure_superuser(username: str, password: str) -> bool:
    """Make ``username`` an active superuser whose password is ``password``; True if created.

    Re-running never fails, and the printed credentials always work.
    """
    user_model = get_user_model()
    user, created = user_model._default_manager.get_or_create(
        **{user_model.USERNAME_FIELD: username}
    )
    if created or not (user.is_active and user.is_superuser and user.check_password(password)):
        user.is_active = user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
    return created


def describe_database() -> str:
    connection = connections[DEFAULT_DB_ALIAS]
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"SQLite {config['NAME']}"
    return f"{connection.display_name} {config['NAME']} on {config['HOST'] or 'localhost'}"
