"""The DEP 14 backend's ``OPTIONS["TIMEOUT"]``: its rows carry the timeout, a consumer stops
a task past it, and the framework sees a failed result whose error is ``TaskTimeout``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from firefly_tasks.models import TaskModel
from tests.conftest import Consumer, raises_in_threads
from tests.dep14 import FIREFLY, TASKS, require_framework

installed_framework = require_framework()

with override_settings(TASKS=TASKS):
    from tests.testapp import dep14_tasks as t

framework: Any = installed_framework


@pytest.fixture(autouse=True)
def tasks_setting() -> Iterator[None]:
    with override_settings(TASKS=TASKS):
        yield


@pytest.mark.slow
@raises_in_threads
def test_a_task_past_the_backends_timeout_is_a_failed_result_with_a_timeout_error(
    start_consumer: Callable[..., Consumer],
) -> None:
    result = t.spin.using(backend="timed").enqueue(60)
    quick = t.spin.using(backend="timed").enqueue(0)
    assert TaskModel.objects.get(pk=int(result.id)).timeout == 1.0

    consumer = start_consumer("--burst", TASKS=TASKS)
    assert consumer.wait(120) == 0, consumer.output()

    result.refresh()
    quick.refresh()
    assert result.status == framework.TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class_path == "firefly_tasks.exceptions.TaskTimeout"
    assert "ran past its timeout of 1 s" in error.traceback
    assert (quick.status, quick.return_value) == (framework.TaskResultStatus.SUCCESSFUL, "spun")


@override_settings(TASKS={"default": {"BACKEND": FIREFLY, "OPTIONS": {"TIMEOUT": -1}}})
def test_a_bad_timeout_option_is_reported_and_refused(db: None) -> None:
    backend = framework.task_backends["default"]
    assert any("TIMEOUT" in problem for problem in backend.option_problems())
    with pytest.raises(ImproperlyConfigured, match="TIMEOUT"):
        t.add.enqueue(1, 2)
