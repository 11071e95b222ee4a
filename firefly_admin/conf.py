"""The dashboard's settings, read at call time so that ``override_settings`` works.

This module is the only place in ``firefly_admin`` that reads ``django.conf.settings``.
Every setting is documented in ``docs/dashboard.md`` and validated by ``checks.py``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

DEFAULTS: dict[str, Any] = {
    "FIREFLY_ADMIN_POLL_INTERVAL": 2,
    "FIREFLY_ADMIN_HIDDEN_ARGS": (),
    "FIREFLY_ADMIN_COUNT_TIMEOUT": 3,
    "FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE": 1000,
    "FIREFLY_ADMIN_METRICS_TOKEN": None,
    "FIREFLY_ADMIN_SEARCH_ROWS": 100_000,
}


class Settings:
    """Typed access to the ``FIREFLY_ADMIN_*`` settings with their defaults."""

    def _get(self, name: str) -> Any:
        return getattr(django_settings, name, DEFAULTS[name])

    def raw(self, name: str) -> Any:
        """A setting as configured (or its default), before any conversion: for checks."""
        return self._get(name)

    @property
    def POLL_INTERVAL(self) -> float:
        """Seconds between refreshes of the dashboard's live regions."""
        return float(self._get("FIREFLY_ADMIN_POLL_INTERVAL"))

    @property
    def HIDDEN_ARGS(self) -> tuple[str, ...]:
        """Argument (and dict key) names whose values are masked in every preview."""
        value = self._get("FIREFLY_ADMIN_HIDDEN_ARGS")
        return (value,) if isinstance(value, str) else tuple(value)

    @property
    def COUNT_TIMEOUT(self) -> float:
        """Seconds after which the database stops an exact count an operator asked for."""
        return float(self._get("FIREFLY_ADMIN_COUNT_TIMEOUT"))

    @property
    def CONFIRM_DELETE_ABOVE(self) -> int:
        """Deleting more tasks than this asks the operator to type how many first."""
        return int(self._get("FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE"))

    @property
    def METRICS_TOKEN(self) -> str | None:
        """The bearer token a Prometheus scraper sends for the metrics page (None: staff only)."""
        value = self._get("FIREFLY_ADMIN_METRICS_TOKEN")
        return value if isinstance(value, str) and value else None

    @property
    def SEARCH_ROWS(self) -> int:
        """How many of the newest tasks an ``error:`` or ``args.`` search reads (search.py)."""
        return int(self._get("FIREFLY_ADMIN_SEARCH_ROWS"))


settings = Settings()
