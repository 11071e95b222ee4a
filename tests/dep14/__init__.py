"""Helpers of the DEP 14 backend tests: the framework in use and the ``TASKS`` they configure.

``framework`` is ``django.tasks`` on Django 6 and the ``django_tasks`` backport on Django 5.2, or
None when neither is installed (the tests then skip, unless ``FIREFLY_REQUIRE_DEP14`` is set).
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import Any

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
