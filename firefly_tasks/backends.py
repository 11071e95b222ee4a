"""Firefly as a backend of the Django Tasks framework (DEP 14), under the path ``TASKS``
settings name: ``{"BACKEND": "firefly_tasks.backends.FireflyBackend"}``. The backend is
``firefly_tasks.dep14.backend``; see docs/dep14.md."""

from __future__ import annotations

from firefly_tasks.dep14.backend import (
    FRAMEWORK,
    IN_PROCESS_WORKER,
    OPTION_DEFAULTS,
    FireflyBackend,
    TaskCancelled,
    WorkerLost,
    exception_class_path,
    firefly_backend,
)

__all__ = [
    "FRAMEWORK",
    "IN_PROCESS_WORKER",
    "OPTION_DEFAULTS",
    "FireflyBackend",
    "TaskCancelled",
    "WorkerLost",
    "exception_class_path",
    "firefly_backend",
]
