"""The task list's search: error text and arguments (``args.KEY:VALUE``), each bounded to the
newest ``FIREFLY_ADMIN_SEARCH_ROWS`` tasks, on every database."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import Client
from django.urls import reverse
from pytest_django import Settings

from firefly_admin.search import search
from firefly_tasks.models import TaskModel, TaskStatus
from tests.admin import tasks
from tests.admin.conftest import make_task

pytestmark = pytest.mark.django_db

TASKS = reverse("admin:firefly_admin_task_changelist")


def found(term: str) -> list[int]:
    result = search(TaskModel.objects.all(), term)
    assert result is not None, term
    return sorted(result.values_list("pk", flat=True))


def test_error_search_matches_any_case_within_the_newest_rows(settings: Settings) -> None:
    old = make_task(TaskStatus.FAILED, error="ValueError: bad SKU 17")
    new = make_task(TaskStatus.FAILED, error="KeyError: 'sku'")
    make_task(TaskStatus.FAILED, error="TimeoutError: slow")
    assert found("error:sku") == [old.pk, new.pk]
    assert found("error:  bad sku ") == [old.pk]
    settings.FIREFLY_ADMIN_SEARCH_ROWS = 2  # the newest two: new and the timeout
    assert found("error:sku") == [new.pk]


def test_argument_search_matches_keywords_positions_and_nested_keys() -> None:
    ann = tasks.sign_in.schedule("ann", "pw", token="123")
    bob = tasks.sign_in.schedule("bob", "pw", token="x")
    report = tasks.build_report.schedule({"customer": {"id": 7, "vip": True}})
    number = tasks.build_report.schedule(123)
    assert found("args.token:123") == [ann.pk]  # a string typed as a number matches its text
    assert found('args.token:"x"') == [bob.pk]
    assert found("args.token:x") == [bob.pk]
    assert found("args.0:bob") == [bob.pk]
    assert found("args.0:123") == [number.pk]  # the number itself
    assert found("args.0.customer.id:7") == [report.pk]
    assert found("args.0.customer.vip:true") == [report.pk]
    assert found("args.1:pw") == [ann.pk, bob.pk]
    assert found("args.token:nobody") == []
    assert found("args.missing:1") == []


def test_argument_search_skips_pickled_rows_and_is_bounded(settings: Settings) -> None:
    ann = tasks.sign_in.schedule("ann", "pw", token="1")
    # A pickled row's text is not JSON: never cast, never matched, never an error.
    TaskModel.objects.filter(pk=tasks.sign_in.schedule("ann", "pw").pk).update(
        serializer="pickle", params_data="gASV.not-json:signature"
    )
    assert found("args.0:ann") == [ann.pk]
    tasks.sign_in.schedule("cy", "pw")
    settings.FIREFLY_ADMIN_SEARCH_ROWS = 2
    assert found("args.0:ann") == []


def test_a_hidden_argument_is_never_searched(settings: Settings) -> None:
    tasks.sign_in.schedule("ann", "hunter2")
    assert found("args.1:hunter2") != []
    assert found("args.password:hunter2") == []  # a keyword never passed: nothing either way
    tasks.sign_in.schedule("ann", password="hunter2")
    assert len(found("args.password:hunter2")) == 1
    settings.FIREFLY_ADMIN_HIDDEN_ARGS = ["password"]
    assert found("args.password:hunter2") == []
    assert found("args.password.x:hunter2") == []


def test_other_terms_fall_back_to_the_name_search(operator_client: Client) -> None:
    assert search(TaskModel.objects.all(), "sign_in") is None
    assert search(TaskModel.objects.all(), "args.:1") is None
    assert search(TaskModel.objects.all(), "error:") is None
    tasks.sign_in.schedule("ann", "pw")
    tasks.build_report.schedule("q3")
    listed = operator_client.get(TASKS, {"q": "build_report"}).context["cl"].result_list
    assert [row.func_name for row in listed] == [tasks.build_report.name]


def test_the_list_searches_errors_and_arguments(operator_client: Client) -> None:
    failed = make_task(TaskStatus.FAILED, error="ValueError: <b>bad</b> sku")
    report = tasks.build_report.schedule("q3")
    by_error = operator_client.get(TASKS, {"q": "error:<b>bad"})
    assert [row.pk for row in by_error.context["cl"].result_list] == [failed.pk]
    assert "<b>bad</b>" not in by_error.content.decode()
    by_argument = operator_client.get(TASKS, {"q": "args.0:q3", "status": "created"})
    assert [row.pk for row in by_argument.context["cl"].result_list] == [report.pk]


@pytest.mark.django_db(databases=["default", "queue"])  # Django 6 checks every database
def test_the_search_bound_is_checked(settings: Settings) -> None:
    for bad in (0, -5, "many", True):
        settings.FIREFLY_ADMIN_SEARCH_ROWS = bad
        assert "firefly_admin.E013" in {m.id for m in run_checks()}
    settings.FIREFLY_ADMIN_SEARCH_ROWS = 10
    assert "firefly_admin.E013" not in {m.id for m in run_checks()}
