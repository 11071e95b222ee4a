"""The database router that puts Firefly on ``FIREFLY_DATABASE``.

Install it first in ``DATABASE_ROUTERS`` when the queue has a database of its own::

    DATABASE_ROUTERS = ["firefly_tasks.routers.FireflyRouter", ...]

It sends the models of ``firefly_tasks`` and ``firefly_admin`` (reads, writes, migrations) to
that alias, keeps other apps' tables off it (unless it is ``default``), and has no other
opinion on any other model. Check ``firefly_tasks.E012`` tells when
Firefly's models are not routed there.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error
from django.db import DEFAULT_DB_ALIAS, connections, router

from firefly_tasks.conf import settings

APPS = frozenset({"firefly_tasks", "firefly_admin"})


class FireflyRouter:
    """Routes Firefly's models to ``FIREFLY_DATABASE``."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return settings.DATABASE if model._meta.app_label in APPS else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return settings.DATABASE if model._meta.app_label in APPS else None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        ours = (obj1._meta.app_label in APPS, obj2._meta.app_label in APPS)
        if all(ours):
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        """Firefly's tables on its alias only, and, on an alias of its own (not
        ``default``), nothing else; anything else is left to other routers."""
        if app_label in APPS:
            return db == settings.DATABASE
        if db == settings.DATABASE and db != DEFAULT_DB_ALIAS:
            return False
        return None


def check_routing(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``FIREFLY_DATABASE`` names a database, and Firefly's models are routed to it
    (registered by ``firefly_tasks.checks``)."""
    alias = settings.raw("FIREFLY_DATABASE")
    if not isinstance(alias, str) or alias not in connections.settings:
        return [
            Error(
                f"FIREFLY_DATABASE is {alias!r}, which is not an alias in DATABASES.",
                hint=f"Use one of: {', '.join(map(repr, connections.settings))}.",
                id="firefly_tasks.E012",
            )
        ]
    from firefly_tasks.models import TaskModel

    if (
        router.db_for_read(TaskModel) != alias
        or router.db_for_write(TaskModel) != alias
        or not router.allow_migrate_model(alias, TaskModel)
    ):
        return [
            Error(
                f"Firefly's models are not routed to FIREFLY_DATABASE ({alias!r}): "
                f"DATABASE_ROUTERS send them to {router.db_for_write(TaskModel)!r}.",
                hint='Put "firefly_tasks.routers.FireflyRouter" first in DATABASE_ROUTERS.',
                id="firefly_tasks.E013",
            )
        ]
    return []


def check_listen_database(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``FIREFLY_LISTEN_DATABASE``, when set, names a PostgreSQL database (registered by
    ``firefly_tasks.checks``)."""
    alias = settings.raw("FIREFLY_LISTEN_DATABASE")
    if alias is None:
        return []
    found = settings.DATABASES.get(alias) if isinstance(alias, str) else None
    engine = str((found or {}).get("ENGINE", ""))
    if not engine.endswith(("postgresql", "postgis")):
        return [
            Error(
                f"FIREFLY_LISTEN_DATABASE is {alias!r}, which is not the alias of a PostgreSQL "
                "database in DATABASES.",
                hint="Name an alias that connects to the queue's PostgreSQL database directly "
                "(not through a transaction pooler), or leave it unset (None).",
                id="firefly_tasks.E014",
            )
        ]
    return []
