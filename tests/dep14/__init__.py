"""Helpers of the DEP 14 backend tests: the framework in use and the ``TASKS`` they configure.

``framework`` is ``django.tasks`` on Django 6 and the ``django_tasks`` backport on Django 5.2, or
None when neither is installed (the tests then skip, unless ``FIREFLY_REQUIRE_DEP14`` is set).
"""

from __future__ import annotations

import os
from importlib import import_module
from types import ModuleType
from typing import Any

import django
import pytest

FIREFLY = "firefly_tasks.backends.FireflyBackend"

TASKS: dict[str, Any] = {
    "default": {"BACKEND": FIREFLY, "QUEUES": ["default", "other"]},
    "retrying": {
        "BACKEND": FIREFLY,
        "QUEUES": ["default", "other"],
        "OPTIONS": {"MAX_RETRIES": 1, "RETRY_DELAY": 0},
    },
    "non_atomic": {"BACKEND": FIREFLY, "OPTIONS": {"ATOMIC": False}},
    "open_queues": {"BACKEND": FIREFLY, "QUEUES": []},
    "timed": {"BACKEND": FIREFLY, "OPTIONS": {"TIMEOUT": 1}},
}


def _import_framework() -> ModuleType | None:
    for name in ("django.tasks", "django_tasks"):
        try:
            return import_module(name)
        except ImportError:
            continue
    return None


framework = _import_framework()
if framework is not None:
    _package = framework.__name__
    TASKS["immediate"] = {"BACKEND": f"{_package}.backends.immediate.ImmediateBackend"}
    TASKS["dummy"] = {"BACKEND": f"{_package}.backends.dummy.DummyBackend"}

if framework is not None:
    exceptions = import_module(f"{framework.__name__}.exceptions")
    signals = import_module(f"{framework.__name__}.signals")
    # Django 6 renamed the backport's InvalidTaskError.
    InvalidTask: Any = getattr(exceptions, "InvalidTask", None) or exceptions.InvalidTaskError


def require_framework() -> ModuleType:
    """The framework, for a test module that needs it: the module is skipped when neither is
    installed, unless ``FIREFLY_REQUIRE_DEP14`` is set (CI sets it), which makes that an error."""
    if framework is not None:
        return framework
    if os.environ.get("FIREFLY_REQUIRE_DEP14"):
        raise RuntimeError(
            "FIREFLY_REQUIRE_DEP14 is set but neither django.tasks (Django 6) nor the "
            'django-tasks backport is installed: pip install -e ".[dep14]"'
        )
    pytest.skip(
        "DEP 14 tests need Django 6 (django.tasks) or, on Django "
        f'{django.get_version()}, the django-tasks backport: pip install -e ".[dep14]"',
        allow_module_level=True,
    )
