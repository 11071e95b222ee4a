"""System checks for the dashboard's configuration. Ids are stable; see docs/dashboard.md.

Retired ids are never reused: ``firefly_admin.E004``, ``E005`` and ``E006`` asked for
``django_htmx`` and ``django_filters`` in ``INSTALLED_APPS`` and django-htmx's middleware, which
the dashboard no longer needs (it ships htmx and builds ``HtmxDetails`` itself).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error, Warning, register

from firefly_admin.conf import settings


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
