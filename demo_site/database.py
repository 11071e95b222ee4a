"""``FIREFLY_DEMO_DATABASE_URL``: run the demo on PostgreSQL or MariaDB instead of SQLite.

    postgres://user:password@127.0.0.1:5432/firefly_demo   (pip install -e ".[postgres]")
    mysql://user:password@127.0.0.1:3306/firefly_demo      (pip install -e ".[mysql]")
    sqlite:////absolute/path/demo.sqlite3    (three slashes: relative to the repository)

Only what the demo needs; a real project would use its own way of configuring databases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

ENGINES = {
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "mysql": "django.db.backends.mysql",
    "mariadb": "django.db.backends.mysql",
}
ROOT = Path(__file__).resolve().parent.parent


def database_from_url(url: str, sqlite: dict[str, Any]) -> dict[str, Any]:
    """A ``DATABASES`` entry for ``url``; a ``sqlite:`` URL keeps the options of ``sqlite``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:////abs/path has the path "//abs/path"; sqlite:///rel/path has "/rel/path".
        name = unquote(parts.path[1:])
        if not name:
            raise ImproperlyConfigured(f"{url!r} names no file: use sqlite:////path/to/file.")
        return {**sqlite, "NAME": ROOT / name}
    engine = ENGINES.get(parts.scheme)
    if engine is None:
        raise ImproperlyConfigured(
            f"FIREFLY_DEMO_DATABASE_URL scheme {parts.scheme!r} is not one of: sqlite, "
            f"{', '.join(ENGINES)}."
        )
    config: dict[str, Any] = {
        "ENGINE": engine,
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }
    if engine.endswith("mysql"):
        config["OPTIONS"] = {"charset": "utf8mb4"}
    return config
