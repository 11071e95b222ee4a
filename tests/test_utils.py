"""Helpers documented by django_firefly_tasks: ``firefly_tasks.utils``."""

from __future__ import annotations

import datetime
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.http import JsonResponse
from django.utils import timezone

from firefly_tasks.testing import run_pending_tasks
from firefly_tasks.utils import task_as_dict
from tests.testapp import tasks


def test_task_as_dict_describes_a_scheduled_task(db: None) -> None:
    eta = timezone.now() + datetime.timedelta(minutes=5)
    row = tasks.fail_with_delay.schedule(eta=eta)

    assert task_as_dict(row) == {
        "id": row.pk,
        "func_name": "tests.testapp.tasks.fail_with_delay",
        "queue": "default",
        "status": "created",
        "priority": 0,
        "not_before": eta,
        "created": row.created,
        "started": None,
        "completed": None,
        "failed": None,
        "cancelled": None,
        "retry_attempts": 0,
        "retry_delay": "60s",
        "max_retries": 1,
        "error": "",
    }


def test_task_as_dict_formats_the_default_retry_delay_in_seconds(db: None) -> None:
    assert task_as_dict(tasks.add.schedule(1, 2))["retry_delay"] == "120s"


def test_task_as_dict_reports_completion(db: None) -> None:
    row = tasks.write_note_urgent.schedule("done")
    run_pending_tasks()
    row.refresh_from_db()

    described = task_as_dict(row)

    assert described["status"] == "completed"
    assert described["priority"] == 50
    assert described["started"] == row.started
    assert described["completed"] == row.completed
    assert described["completed"] is not None


def test_task_as_dict_reports_the_error_of_a_failed_task(db: None) -> None:
    row = tasks.write_note_then_fail.schedule("x")
    run_pending_tasks()
    row.refresh_from_db()

    described = task_as_dict(row)

    assert described["status"] == "failed"
    assert described["failed"] == row.failed
    assert described["error"] == "RuntimeError: failed after writing x"


def test_task_as_dict_is_ready_for_json_response(db: None) -> None:
    row = tasks.add.schedule(1, 2)

    response = JsonResponse(task_as_dict(row))

    body = json.loads(response.content)
    assert body["id"] == row.pk
    assert body["status"] == "created"
    assert body["created"] == json.loads(json.dumps(row.created, cls=DjangoJSONEncoder))
