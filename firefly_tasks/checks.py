"""System checks for Firefly's configuration. Ids are stable; see docs/checks.md."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections

from firefly_tasks.conf import SERIALIZERS, settings
from firefly_tasks.dialects import DIALECTS, dialect
from firefly_tasks.exceptions import InvalidScheduleError, InvalidTaskError, UnknownTaskError
from firefly_tasks.options import validate_timeout
from firefly_tasks.routers import check_listen_database, check_routing

register(check_routing)
register(check_listen_database)

# A payload limit below 1 KiB refuses ordinary calls. Quoted in an INSERT, a payload can take up
# to twice its size (escaped quotes and backslashes), so above 8 MiB a statement can exceed
# MariaDB's default max_allowed_packet of 16 MiB.
MIN_PAYLOAD_BYTES = 1024
MARIADB_SAFE_PAYLOAD_BYTES = 8 * 1024 * 1024


def _is_non_negative_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    serializer = settings.raw("FIREFLY_SERIALIZER")
    if serializer not in SERIALIZERS:
        errors.append(
            Error(
                f"FIREFLY_SERIALIZER is {serializer!r}, which is not a serializer.",
                hint=f"Use one of: {', '.join(SERIALIZERS)}.",
                id="firefly_tasks.E001",
            )
        )
    from firefly_tasks.queues import invalid_entry

    bad = invalid_entry(settings.raw("FIREFLY_QUEUES"))
    if bad:
        return [
            *errors,
            Error(
                f"FIREFLY_QUEUES has an entry that is not a queue: {bad!r}.",
                hint='Each entry is a name, or a dict such as {"name": "emails", '
                '"concurrency": 5, "rate": "100/m"} (both optional).',
                id="firefly_tasks.E011",
            ),
        ]
    queues = settings.QUEUES
    default_queue = settings.raw("FIREFLY_DEFAULT_QUEUE")
    if queues is not None and default_queue not in queues:
        errors.append(
            Error(
                f"FIREFLY_DEFAULT_QUEUE {default_queue!r} is not in FIREFLY_QUEUES.",
                hint="Add it to FIREFLY_QUEUES or choose another default queue.",
                id="firefly_tasks.E002",
            )
        )
    for name in ("MAX_RETRIES", "RETRY_DELAY", "RETRY_BACKOFF_MAX"):
        if not _is_non_negative_int(settings.raw(f"FIREFLY_{name}")):
            errors.append(
                Error(
                    f"FIREFLY_{name} must be a non-negative int.",
                    id="firefly_tasks.E003",
                )
            )
    try:
        nap, poll = settings.CONSUMER_NAP_TIME, settings.MAX_POLL_INTERVAL
    except (TypeError, ValueError) as exc:
        # A check reports a bad setting; it must not crash on it.
        valid, hint = False, f"They must be numbers of seconds: {exc}."
    else:
        valid, hint = 0 < nap <= poll, f"They are {nap} and {poll}."
    if not valid:
        errors.append(
            Error(
                "FIREFLY_CONSUMER_NAP_TIME must be positive and at most FIREFLY_MAX_POLL_INTERVAL.",
                hint=hint,
                id="firefly_tasks.E004",
            )
        )
    errors += _check_liveness() + _check_sizes() + _check_payloads() + _check_timeout()
    return errors


def _check_timeout() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    try:
        validate_timeout(settings.raw("FIREFLY_TASK_TIMEOUT"))
    except InvalidTaskError as exc:
        errors.append(
            Error(
                "FIREFLY_TASK_TIMEOUT must be a positive number of seconds, or None.",
                hint=str(exc),
                id="firefly_tasks.E010",
            )
        )
    grace = settings.raw("FIREFLY_TIMEOUT_GRACE")
    if grace is None or not _is_positive_number(grace):
        errors.append(
            Error(
                "FIREFLY_TIMEOUT_GRACE must be a positive number of seconds.",
                hint=f"It is {grace!r}; the default is 10.",
                id="firefly_tasks.E010",
            )
        )
    return errors


def _is_positive_number(value: object) -> bool:
    try:
        validate_timeout(value)
    except InvalidTaskError:
        return False
    return True


def _check_payloads() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    accept = settings.raw("FIREFLY_ACCEPT_PICKLE")
    if not isinstance(accept, bool):
        errors.append(
            Error(
                "FIREFLY_ACCEPT_PICKLE must be True or False.",
                hint=f"It is {accept!r}; only True lets consumers read pickle rows.",
                id="firefly_tasks.E008",
            )
        )
    limit = settings.raw("FIREFLY_MAX_PAYLOAD_BYTES")
    if not (_is_non_negative_int(limit) and limit >= MIN_PAYLOAD_BYTES):
        errors.append(
            Error(
                f"FIREFLY_MAX_PAYLOAD_BYTES must be an int of at least {MIN_PAYLOAD_BYTES}.",
                hint=f"It is {limit!r}; the default is 1048576 (1 MiB).",
                id="firefly_tasks.E009",
            )
        )
    elif limit > MARIADB_SAFE_PAYLOAD_BYTES and any(
        "mysql" in str(config.get("ENGINE", "")) for config in settings.DATABASES.values()
    ):
        errors.append(
            Warning(
                f"FIREFLY_MAX_PAYLOAD_BYTES is {limit}: on MariaDB/MySQL, a payload that large "
                "can make a statement longer than max_allowed_packet, which the database "
                "refuses.",
                hint=f"Keep it at most {MARIADB_SAFE_PAYLOAD_BYTES}, or raise "
                "max_allowed_packet on the server to at least twice the limit.",
                id="firefly_tasks.W005",
            )
        )
    return errors


def _check_liveness() -> list[CheckMessage]:
    try:
        interval, timeout = settings.HEARTBEAT_INTERVAL, settings.WORKER_TIMEOUT
    except (TypeError, ValueError) as exc:
        valid, hint = False, f"They must be numbers of seconds: {exc}."
    else:
        valid, hint = 0 < interval < timeout, f"They are {interval} and {timeout}."
    if valid:
        return []
    return [
        Error(
            "FIREFLY_HEARTBEAT_INTERVAL must be positive and below FIREFLY_WORKER_TIMEOUT, or "
            "live workers are declared dead between two heartbeats.",
            hint=hint,
            id="firefly_tasks.E006",
        )
    ]


def _check_sizes() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for name, least in (
        ("MAX_LOST_ATTEMPTS", 0),
        ("MAX_SNOOZES", 0),
        ("PREVIEW_LENGTH", 1),
        ("CLAIM_BATCH_SIZE", 1),
        ("ROLLUP_RETENTION_DAYS", 1),
    ):
        value = settings.raw(f"FIREFLY_{name}")
        if not (_is_non_negative_int(value) and value >= least):
            errors.append(
                Error(
                    f"FIREFLY_{name} must be an int of at least {least}.",
                    hint=f"It is {value!r}.",
                    id="firefly_tasks.E007",
                )
            )
    window = settings.raw("FIREFLY_GROUP_COMMIT_WINDOW")
    if not isinstance(window, int | float) or isinstance(window, bool) or window < 0:
        errors.append(
            Error(
                "FIREFLY_GROUP_COMMIT_WINDOW must be a number of seconds of at least 0.",
                hint=f"It is {window!r}; 0 turns group commit off.",
                id="firefly_tasks.E007",
            )
        )
    return errors


@register()
def check_task_aliases(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from firefly_tasks.registry import registry

    return [
        Warning(
            f"FIREFLY_TASK_ALIASES maps {old!r} to {new!r}, which is not a registered task.",
            hint="Point the alias at the new module.qualname of the decorated function.",
            id="firefly_tasks.W004",
        )
        for old, new in settings.TASK_ALIASES.items()
        if new not in registry and not _is_framework_task(new)
    ]


def _is_framework_task(name: str) -> bool:
    try:
        from firefly_tasks.dep14.framework import find_framework_task
    except ImportError:
        return False
    return find_framework_task(name) is not None


@register()
def check_task_backends(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The Django Tasks framework is there for ``TASKS`` aliases that use FireflyBackend.

    The framework checks each backend itself (``backend.check()``) once it is imported;
    this runs those checks when it was not imported yet.
    """
    aliases = settings.firefly_backend_aliases()
    if not aliases:
        return []
    framework_checked = any(
        module in sys.modules for module in ("django.tasks.checks", "django_tasks.checks")
    )
    try:
        from firefly_tasks.dep14.framework import task_backends
    except ImportError as exc:
        return [
            Error(
                f"TASKS uses FireflyBackend, but the Django Tasks framework is missing: {exc}",
                hint='On Django 5.2, pip install "django-firefly[dep14]" (the django-tasks '
                "backport); Django 6 has it built in.",
                id="firefly_tasks.E103",
            )
        ]
    if framework_checked:
        return []
    return [message for alias in aliases for message in task_backends[alias].check()]


@register(Tags.database)
def check_databases(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """Database facts that need a connection; run by ``migrate`` and ``check --database``."""
    messages: list[CheckMessage] = []
    for alias in databases or ():
        if alias != settings.DATABASE:
            continue  # the project's other databases are none of Firefly's business
        connection = connections[alias]
        if connection.vendor not in DIALECTS:
            messages.append(
                Error(
                    f"Database {alias!r} is {connection.vendor}; Firefly supports PostgreSQL, "
                    "MariaDB/MySQL and SQLite.",
                    id="firefly_tasks.E005",
                )
            )
        else:
            messages += dialect(connection).check()
    return messages


@register()
def check_sqlite_options(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for alias, config in settings.DATABASES.items():
        if not str(config.get("ENGINE", "")).endswith("sqlite3"):
            continue
        options: dict[str, Any] = config.get("OPTIONS", {})
        if str(options.get("transaction_mode", "")).upper() != "IMMEDIATE":
            messages.append(
                Warning(
                    f"SQLite database {alias!r} does not use transaction_mode IMMEDIATE: a task "
                    "that reads before it writes can fail with 'database is locked'.",
                    hint='Add "transaction_mode": "IMMEDIATE" to its OPTIONS.',
                    id="firefly_tasks.W002",
                )
            )
        if float(options.get("timeout", 5)) < 5:
            messages.append(
                Warning(
                    f"SQLite database {alias!r} has a timeout under 5 seconds.",
                    hint='Set "timeout": 20 (seconds) in its OPTIONS.',
                    id="firefly_tasks.W003",
                )
            )
    return messages


@register()
def check_schedules(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``FIREFLY_SCHEDULES`` and ``@periodic``: each entry as a consumer would sync it."""
    from firefly_tasks.declarations import decorated_names, spec

    entries = settings.raw("FIREFLY_SCHEDULES")
    if not isinstance(entries, Mapping):
        return [
            Error(
                f"FIREFLY_SCHEDULES must be a dict of schedules by name, not {entries!r}.",
                id="firefly_tasks.E201",
            )
        ]
    messages: list[CheckMessage] = []
    for name, entry in entries.items():
        try:
            spec(name, entry)
        except InvalidScheduleError as exc:
            unknown = isinstance(exc.__cause__, UnknownTaskError)
            messages.append(
                Error(
                    str(exc),
                    hint="Name a task decorated with @task or @atask (its module.qualname)."
                    if unknown
                    else "See docs/periodic.md for what a schedule takes.",
                    id="firefly_tasks.E203" if unknown else "firefly_tasks.E202",
                )
            )
    for name in sorted(set(map(str, entries)) & decorated_names()):
        messages.append(
            Error(
                f"Schedule {name!r} is declared both in FIREFLY_SCHEDULES and with @periodic.",
                hint="Give one of them another name (@periodic(name=...)).",
                id="firefly_tasks.E204",
            )
        )
    return messages


@register(Tags.database)
def check_schedule_tasks(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """Enabled schedules in the table whose task is not registered (renamed or removed):
    consumers skip their ticks. Run by ``migrate`` and ``check --database``."""
    if settings.DATABASE not in (databases or ()):
        return []
    from django.db.utils import DatabaseError

    from firefly_tasks.models import ScheduleModel
    from firefly_tasks.registry import registry

    try:
        rows = list(ScheduleModel.objects.filter(enabled=True).values_list("name", "func_name"))
    except DatabaseError:  # not migrated yet
        return []
    messages: list[CheckMessage] = []
    for name, func_name in rows:
        try:
            registry.resolve(func_name)
        except UnknownTaskError:
            messages.append(
                Warning(
                    f"Schedule {name!r} runs {func_name!r}, which is not a registered task: "
                    "its ticks are skipped.",
                    hint="Register the task, map its old name in FIREFLY_TASK_ALIASES, or "
                    "disable the schedule.",
                    id="firefly_tasks.W201",
                )
            )
    return messages
