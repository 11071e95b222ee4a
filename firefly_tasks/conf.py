"""Firefly's settings, read at call time so that ``override_settings`` works.

This module is the only place in ``firefly_tasks`` that reads ``django.conf.settings``.
Every setting is documented in ``docs/settings.md`` and validated by ``checks.py``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    "FIREFLY_DATABASE": "default",
    "FIREFLY_DEFAULT_QUEUE": "default",
    "FIREFLY_QUEUES": None,
    "FIREFLY_MAX_RETRIES": 0,
    "FIREFLY_RETRY_DELAY": 120,
    "FIREFLY_RETRY_BACKOFF_MAX": 3600,
    "FIREFLY_SERIALIZER": "json",
    "FIREFLY_ACCEPT_PICKLE": False,
    "FIREFLY_MAX_PAYLOAD_BYTES": 1024 * 1024,
    "FIREFLY_TASK_MODULES": (),
    "FIREFLY_TASK_ALIASES": {},
    "FIREFLY_RUN_IMMEDIATELY": False,
    "FIREFLY_CONSUMER_NAP_TIME": 0.001,
    "FIREFLY_MAX_POLL_INTERVAL": 0.2,
    "FIREFLY_PREVIEW_LENGTH": 200,
    "FIREFLY_HEARTBEAT_INTERVAL": 5.0,
    "FIREFLY_WORKER_TIMEOUT": 30.0,
    "FIREFLY_MAX_LOST_ATTEMPTS": 2,
    "FIREFLY_MAX_SNOOZES": 100,
    "FIREFLY_CLAIM_BATCH_SIZE": 250,
    "FIREFLY_GROUP_COMMIT_WINDOW": 0.005,
    "FIREFLY_CLAIM_AHEAD": True,
    "FIREFLY_LISTEN_NOTIFY": True,
    "FIREFLY_LISTEN_DATABASE": None,
    "FIREFLY_ROLLUP_RETENTION_DAYS": 90,
    "FIREFLY_SCHEDULES": {},
    "FIREFLY_TASK_TIMEOUT": None,
    "FIREFLY_TRACING": True,
    "FIREFLY_TIMEOUT_GRACE": 10.0,
}

SERIALIZERS = ("json", "pickle")


class Settings:
    """Typed access to the ``FIREFLY_*`` settings with their defaults.

    Values are remembered once read: reading a setting left at its default goes through a
    raised ``AttributeError`` in Django's settings (about 5 µs), and ``schedule()`` reads
    seven. ``override_settings`` (and anything else that sends ``setting_changed``) forgets
    them.
    """

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        setting_changed.connect(self._setting_changed, weak=False)

    def _setting_changed(self, *, setting: str, **kwargs: Any) -> None:
        if setting.startswith("FIREFLY_"):
            self._values.pop(setting, None)

    def _get(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            value = self._values[name] = getattr(django_settings, name, DEFAULTS[name])
            return value

    def raw(self, name: str) -> Any:
        """A setting as configured (or its default), before any conversion: for checks."""
        return self._get(name)

    @property
    def DATABASE(self) -> str:
        """The alias of the database that holds Firefly's tables and takes all its queries."""
        return str(self._get("FIREFLY_DATABASE"))

    @property
    def DEFAULT_QUEUE(self) -> str:
        return str(self._get("FIREFLY_DEFAULT_QUEUE"))

    @property
    def QUEUES(self) -> tuple[str, ...] | None:
        """The allowed queue names, or ``None`` when any name is allowed. An entry is a
        name, or a dict with its ``"name"`` and options (``"concurrency"``)."""
        queues = self._get("FIREFLY_QUEUES")
        if queues is None:
            return None
        return tuple(q["name"] if isinstance(q, dict) else q for q in queues)

    @property
    def QUEUE_LIMITS(self) -> dict[str, int]:
        """How many tasks of a queue may run at once across all consumers, by queue: the
        ``"concurrency"`` of ``FIREFLY_QUEUES`` entries that have one."""
        entries = self._get("FIREFLY_QUEUES") or ()
        return {
            q["name"]: int(q["concurrency"])
            for q in entries
            if isinstance(q, dict) and q.get("concurrency") is not None
        }

    @property
    def QUEUE_RATES(self) -> dict[str, str]:
        """How many tasks of a queue may start a period (``"100/m"``), by queue: the
        ``"rate"`` of ``FIREFLY_QUEUES`` entries that have one."""
        entries = self._get("FIREFLY_QUEUES") or ()
        return {
            q["name"]: str(q["rate"])
            for q in entries
            if isinstance(q, dict) and q.get("rate") is not None
        }

    @property
    def MAX_RETRIES(self) -> int:
        return int(self._get("FIREFLY_MAX_RETRIES"))

    @property
    def RETRY_DELAY(self) -> int:
        return int(self._get("FIREFLY_RETRY_DELAY"))

    @property
    def RETRY_BACKOFF_MAX(self) -> int:
        return int(self._get("FIREFLY_RETRY_BACKOFF_MAX"))

    @property
    def SERIALIZER(self) -> str:
        return str(self._get("FIREFLY_SERIALIZER"))

    @property
    def ACCEPT_PICKLE(self) -> bool:
        """Read (signed) pickle rows even though ``SERIALIZER`` is not ``"pickle"``."""
        return self._get("FIREFLY_ACCEPT_PICKLE") is True

    @property
    def MAX_PAYLOAD_BYTES(self) -> int:
        """The largest stored arguments or return value, in bytes of stored text."""
        return int(self._get("FIREFLY_MAX_PAYLOAD_BYTES"))

    @property
    def TASK_MODULES(self) -> tuple[str, ...]:
        return tuple(self._get("FIREFLY_TASK_MODULES"))

    @property
    def TASK_ALIASES(self) -> dict[str, str]:
        return dict(self._get("FIREFLY_TASK_ALIASES"))

    @property
    def RUN_IMMEDIATELY(self) -> bool:
        return bool(self._get("FIREFLY_RUN_IMMEDIATELY"))

    @property
    def CONSUMER_NAP_TIME(self) -> float:
        return float(self._get("FIREFLY_CONSUMER_NAP_TIME"))

    @property
    def MAX_POLL_INTERVAL(self) -> float:
        return float(self._get("FIREFLY_MAX_POLL_INTERVAL"))

    @property
    def PREVIEW_LENGTH(self) -> int:
        return int(self._get("FIREFLY_PREVIEW_LENGTH"))

    @property
    def HEARTBEAT_INTERVAL(self) -> float:
        """Seconds between a consumer's heartbeats."""
        return float(self._get("FIREFLY_HEARTBEAT_INTERVAL"))

    @property
    def WORKER_TIMEOUT(self) -> float:
        """Seconds without a heartbeat after which a worker is dead and its tasks recovered."""
        return float(self._get("FIREFLY_WORKER_TIMEOUT"))

    @property
    def MAX_SNOOZES(self) -> int:
        """Snoozes a task may take; the next one fails it."""
        return int(self._get("FIREFLY_MAX_SNOOZES"))

    @property
    def MAX_LOST_ATTEMPTS(self) -> int:
        """Losses a task survives; the next one fails it as poison."""
        return int(self._get("FIREFLY_MAX_LOST_ATTEMPTS"))

    @property
    def CLAIM_BATCH_SIZE(self) -> int:
        """The most tasks one consumer thread claims at once."""
        return int(self._get("FIREFLY_CLAIM_BATCH_SIZE"))

    @property
    def GROUP_COMMIT_WINDOW(self) -> float:
        """Seconds fast tasks' completions may wait to share a commit; 0 disables grouping."""
        return float(self._get("FIREFLY_GROUP_COMMIT_WINDOW"))

    @property
    def ROLLUP_RETENTION_DAYS(self) -> int:
        """Days of per-minute rollups ``prune_tasks`` keeps (the dashboard's history)."""
        return int(self._get("FIREFLY_ROLLUP_RETENTION_DAYS"))

    @property
    def TRACING(self) -> bool:
        """With OpenTelemetry installed: carry the scheduler's trace context, run tasks in spans."""
        return bool(self._get("FIREFLY_TRACING"))

    @property
    def CLAIM_AHEAD(self) -> bool:
        """Claim a thread's next batch of fast tasks while it runs the current one."""
        return bool(self._get("FIREFLY_CLAIM_AHEAD"))

    @property
    def LISTEN_NOTIFY(self) -> bool:
        """On PostgreSQL, wake idle consumers with LISTEN/NOTIFY instead of waiting to poll."""
        return bool(self._get("FIREFLY_LISTEN_NOTIFY"))

    @property
    def LISTEN_DATABASE(self) -> str | None:
        """The alias whose connection settings LISTEN connections use (a direct connection
        past a transaction pooler); None: ``FIREFLY_DATABASE``'s."""
        value = self._get("FIREFLY_LISTEN_DATABASE")
        return str(value) if value else None

    @property
    def SCHEDULES(self) -> dict[str, Any]:
        """Periodic schedules by name, as configured (``firefly_tasks.schedules`` reads them)."""
        return dict(self._get("FIREFLY_SCHEDULES"))

    @property
    def TASK_TIMEOUT(self) -> float | None:
        """Seconds a task's attempt may run when neither its decorator nor the call sets a
        ``timeout``; ``None``: no limit."""
        timeout = self._get("FIREFLY_TASK_TIMEOUT")
        return None if timeout is None else float(timeout)

    @property
    def TIMEOUT_GRACE(self) -> float:
        """Seconds a task past its timeout has to stop before its thread is fenced."""
        return float(self._get("FIREFLY_TIMEOUT_GRACE"))

    # Django's own settings that Firefly reads: not remembered, since Firefly does not own them.

    @property
    def USE_TZ(self) -> bool:
        return bool(django_settings.USE_TZ)

    @property
    def TIME_ZONE(self) -> str:
        """Where a cron schedule without a ``timezone`` is read."""
        return str(getattr(django_settings, "TIME_ZONE", None) or "UTC")

    @property
    def DATABASES(self) -> dict[str, dict[str, Any]]:
        return dict(django_settings.DATABASES)

    def firefly_backend_aliases(self) -> list[str]:
        """The aliases of Django's ``TASKS`` setting that use Firefly's DEP 14 backend."""
        tasks = getattr(django_settings, "TASKS", None)
        if not isinstance(tasks, dict):
            return []
        return [
            alias
            for alias, config in tasks.items()
            if isinstance(config, dict) and config.get("BACKEND") == FIREFLY_BACKEND
        ]


FIREFLY_BACKEND = "firefly_tasks.backends.FireflyBackend"

settings = Settings()
