"""Which modules a stored task name may import: those of installed apps, and
``FIREFLY_TASK_MODULES``."""

from __future__ import annotations

from django.apps import apps

from firefly_tasks.conf import settings


def may_import(module: str) -> bool:
    """Whether a stored task name may import ``module``: a module of an installed app, or one
    listed in ``FIREFLY_TASK_MODULES``."""
    return in_installed_app(module) or module in settings.TASK_MODULES


def in_installed_app(module: str) -> bool:
    return any(
        module == config.name or module.startswith(config.name + ".")
        for config in apps.get_app_configs()
    )
