"""System checks for the dashboard's configuration. Ids are stable; see docs/dashboard.md.

Retired ids are never reused: ``firefly_admin.E004``, ``E005`` and ``E006`` asked for
``django_htmx`` and ``django_filters`` in ``INSTALLED_APPS`` and django-htmx's middleware, which
the dashboard no longer needs (it ships htmx and builds ``HtmxDetails`` itself).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error, Warning, register

from firefly_admin.conf import settings

# An hour: longer than any web server waits for a page, within every database's limit.
MAX_COUNT_TIMEOUT = 3600
# A bearer token shorter than this is guessable.
MIN_TOKEN_LENGTH = 16


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    interval = settings.raw("FIREFLY_ADMIN_POLL_INTERVAL")
    if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
        messages.append(
            Error(
                f"FIREFLY_ADMIN_POLL_INTERVAL is {interval!r}; it must be a positive number "
                "of seconds.",
                hint="The default is 2.",
                id="firefly_admin.E001",
            )
        )
    elif interval < 1:
        messages.append(
            Warning(
                f"FIREFLY_ADMIN_POLL_INTERVAL is {interval} s: every open dashboard runs its "
                "queries more than once a second.",
                hint="Use 1 second or more outside tests.",
                id="firefly_admin.W001",
            )
        )
    hidden = settings.raw("FIREFLY_ADMIN_HIDDEN_ARGS")
    if isinstance(hidden, str) or not isinstance(hidden, list | tuple | set | frozenset):
        messages.append(
            Error(
                "FIREFLY_ADMIN_HIDDEN_ARGS must be a list of argument names.",
                hint='For example: FIREFLY_ADMIN_HIDDEN_ARGS = ["password", "token"].',
                id="firefly_admin.E002",
            )
        )
    elif not all(isinstance(name, str) and name for name in hidden):
        messages.append(
            Error(
                "FIREFLY_ADMIN_HIDDEN_ARGS must hold non-empty strings only.",
                id="firefly_admin.E002",
            )
        )
    return messages


@register()
def check_bulk_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The settings of counting and of large deletes on the task list."""
    messages: list[CheckMessage] = []
    timeout = settings.raw("FIREFLY_ADMIN_COUNT_TIMEOUT")
    is_number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
    if not (is_number and 0 < timeout <= MAX_COUNT_TIMEOUT):
        messages.append(
            Error(
                f"FIREFLY_ADMIN_COUNT_TIMEOUT is {timeout!r}; it must be a number of seconds "
                f"over 0 and at most {MAX_COUNT_TIMEOUT}.",
                hint="The default is 3: an exact count stops after 3 seconds.",
                id="firefly_admin.E010",
            )
        )
    above = settings.raw("FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE")
    if not isinstance(above, int) or isinstance(above, bool) or above < 0:
        messages.append(
            Error(
                f"FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE is {above!r}; it must be a whole number "
                "of tasks, 0 or more.",
                hint="The default is 1000; 0 asks to type the count before every delete.",
                id="firefly_admin.E011",
            )
        )
    rows = settings.raw("FIREFLY_ADMIN_SEARCH_ROWS")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        messages.append(
            Error(
                f"FIREFLY_ADMIN_SEARCH_ROWS is {rows!r}; it must be a whole number of tasks, "
                "1 or more.",
                hint="The default is 100000: error and argument searches read the newest "
                "100,000 tasks.",
                id="firefly_admin.E013",
            )
        )
    return messages


@register()
def check_metrics(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The Prometheus page's token, and the library it is rendered with."""
    token = settings.raw("FIREFLY_ADMIN_METRICS_TOKEN")
    if token is not None and not (isinstance(token, str) and len(token) >= MIN_TOKEN_LENGTH):
        return [
            Error(
                "FIREFLY_ADMIN_METRICS_TOKEN must be None or a string of at least "
                f"{MIN_TOKEN_LENGTH} characters.",
                hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe())'",
                id="firefly_admin.E012",
            )
        ]
    if token is None or importlib.util.find_spec("prometheus_client") is not None:
        return []
    return [
        Warning(
            "FIREFLY_ADMIN_METRICS_TOKEN is set, but prometheus_client is not installed: the "
            "metrics page answers 501.",
            hint="pip install firefly-tasks[metrics]",
            id="firefly_admin.W002",
        )
    ]


@register()
def check_installed(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if apps.is_installed("firefly_tasks"):
        return []
    return [
        Error(
            '"firefly_tasks" must be in INSTALLED_APPS: the dashboard shows its tables.',
            hint='Add "firefly_tasks" to INSTALLED_APPS.',
            id="firefly_admin.E003",
        )
    ]
