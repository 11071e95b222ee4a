"""The tests' database router: Firefly's (``firefly_tasks.routers.FireflyRouter``) for reads
and writes, but Firefly's tables are created on both test databases, so that a test may move
the queue to the "queue" alias with ``override_settings(FIREFLY_DATABASE="queue")``."""

from __future__ import annotations

from typing import Any

from firefly_tasks.routers import APPS, FireflyRouter


class BothDatabasesRouter(FireflyRouter):
    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if app_label in APPS:
            return db in ("default", "queue")
        return None
