"""How numbers and ids are written on the dashboard's pages: rounded, in the active language,
and never grouped where a form or URL reads them back."""

from __future__ import annotations

import datetime
import re

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django import Settings

from firefly_admin import display
from firefly_tasks.models import TaskModel, TaskStatus
from tests.admin.conftest import make_task, make_worker


def test_decimals_are_rounded_not_cut() -> None:
    assert display.percent(0.01996) == "2.0 %"
    assert display.duration(datetime.timedelta(seconds=1.96)) == "2.0 s"
    assert display.duration(datetime.timedelta(milliseconds=8.96)) == "9.0 ms"
    assert display.age(9.96) == "10.0 s"


@pytest.mark.django_db
def test_ids_in_forms_and_links_are_never_grouped(
    operator_client: Client, settings: Settings
) -> None:
    settings.USE_THOUSAND_SEPARATOR = True
    task = make_task(TaskStatus.FAILED)
    TaskModel.objects.filter(pk=task.pk).update(id=123_456)
    make_worker(pk=7_654)

    dashboard = operator_client.get(reverse("admin:firefly_admin_task_dashboard")).content
    page = operator_client.get(reverse("admin:firefly_admin_task_change", args=[123_456])).content
    listed = operator_client.get(reverse("admin:firefly_admin_task_changelist")).content
    html = (dashboard + page + listed).decode()
    inputs = re.findall(r'<input type="hidden" name="[^"]+" value="([^"]*)"', html)
    options = re.findall(r'<option value="(\d[^"]*)"', dashboard.decode())
    assert "123456" in inputs and "15000" in options
    assert [value for value in inputs + options if "," in value] == []
    assert "?worker=7654" in dashboard.decode()
    assert "123,456" in html  # where it is read by people, it is grouped
