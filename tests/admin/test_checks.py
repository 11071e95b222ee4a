"""System checks of firefly_admin, with their stable ids."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.core.checks import CheckMessage
from django.test import override_settings
from pytest_django import Settings

from firefly_admin.checks import (
    check_bulk_settings,
    check_installed,
    check_metrics,
    check_settings,
)


def ids(messages: list[CheckMessage]) -> list[str | None]:
    return [message.id for message in messages]


def test_the_test_settings_pass() -> None:
    assert check_settings() == []
    assert check_bulk_settings() == []
    assert check_installed() == []


@pytest.mark.parametrize("value", [0, -1, "2", True, None])
def test_poll_interval_must_be_a_positive_number(settings: Settings, value: object) -> None:
    settings.FIREFLY_ADMIN_POLL_INTERVAL = value
    assert ids(check_settings()) == ["firefly_admin.E001"]


def test_a_sub_second_poll_interval_is_a_warning(settings: Settings) -> None:
    settings.FIREFLY_ADMIN_POLL_INTERVAL = 0.5
    assert ids(check_settings()) == ["firefly_admin.W001"]


@pytest.mark.parametrize("value", ["password", ["password", 3], [""], None])
def test_hidden_args_must_be_a_list_of_names(settings: Settings, value: object) -> None:
    settings.FIREFLY_ADMIN_HIDDEN_ARGS = value
    assert ids(check_settings()) == ["firefly_admin.E002"]


@pytest.mark.parametrize("value", [0, -3, "3", True, None, float("nan"), float("inf"), 3601])
def test_count_timeout_must_be_a_positive_number_of_seconds_up_to_an_hour(
    settings: Settings, value: object
) -> None:
    settings.FIREFLY_ADMIN_COUNT_TIMEOUT = value
    assert ids(check_bulk_settings()) == ["firefly_admin.E010"]


@pytest.mark.parametrize("value", [0.5, 3, 3600])
def test_count_timeout_may_be_any_positive_number(settings: Settings, value: object) -> None:
    settings.FIREFLY_ADMIN_COUNT_TIMEOUT = value
    assert check_bulk_settings() == []


@pytest.mark.parametrize("value", [-1, 1000.0, "1000", False, None])
def test_confirm_delete_above_must_be_a_whole_number(settings: Settings, value: object) -> None:
    settings.FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE = value
    assert ids(check_bulk_settings()) == ["firefly_admin.E011"]


def test_confirm_delete_above_zero_asks_before_every_delete(settings: Settings) -> None:
    settings.FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE = 0
    assert check_bulk_settings() == []


def test_firefly_tasks_must_be_installed(settings: Settings) -> None:
    settings.INSTALLED_APPS = [name for name in settings.INSTALLED_APPS if name != "firefly_tasks"]
    assert ids(check_installed()) == ["firefly_admin.E003"]


def test_a_bare_install_passes_without_django_htmx_or_django_filter(settings: Settings) -> None:
    """firefly_admin.E004 to E006 asked for them; those ids are retired, never reused."""
    assert not apps.is_installed("django_htmx")
    assert not apps.is_installed("django_filters")
    assert not [name for name in settings.MIDDLEWARE if "htmx" in name]
    assert check_installed() == []


@pytest.mark.parametrize("token", ["short", 42, ""])
def test_a_metrics_token_that_is_not_a_long_string_is_error_e012(token: object) -> None:
    with override_settings(FIREFLY_ADMIN_METRICS_TOKEN=token):
        assert [m.id for m in check_metrics()] == ["firefly_admin.E012"]
    with override_settings(FIREFLY_ADMIN_METRICS_TOKEN="x" * 16):
        assert check_metrics() == []
    with override_settings(FIREFLY_ADMIN_METRICS_TOKEN=None):
        assert check_metrics() == []
