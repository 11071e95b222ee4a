"""Firefly's settings: defaults, and values remembered until a setting changes."""

from __future__ import annotations

import pytest
from django.test import override_settings
from pytest_django import Settings

from firefly_tasks.conf import DEFAULTS
from firefly_tasks.conf import settings as firefly_settings
from tests.testapp import tasks


def test_a_setting_left_out_reads_as_its_default() -> None:
    assert firefly_settings.DEFAULT_QUEUE == DEFAULTS["FIREFLY_DEFAULT_QUEUE"] == "default"


@pytest.mark.django_db
def test_a_remembered_setting_follows_override_settings_in_and_out() -> None:
    assert firefly_settings.PREVIEW_LENGTH == 200  # read once: remembered from here on
    with override_settings(FIREFLY_PREVIEW_LENGTH=12):
        assert firefly_settings.PREVIEW_LENGTH == 12
        row = tasks.echo.schedule("a long argument, longer than twelve")
        assert len(row.params_preview) == 12
    assert firefly_settings.PREVIEW_LENGTH == 200


@pytest.mark.django_db
def test_a_change_through_pytest_djangos_settings_fixture_is_seen(
    settings: Settings,
) -> None:
    assert firefly_settings.DEFAULT_QUEUE == "default"  # remembered before the change
    settings.FIREFLY_DEFAULT_QUEUE = "elsewhere"
    assert firefly_settings.DEFAULT_QUEUE == "elsewhere"
    assert tasks.echo.schedule(1).queue == "elsewhere"


def test_pickle_is_off_and_payloads_are_capped_at_1_mib_by_default() -> None:
    assert firefly_settings.ACCEPT_PICKLE is False
    assert firefly_settings.MAX_PAYLOAD_BYTES == DEFAULTS["FIREFLY_MAX_PAYLOAD_BYTES"] == 1048576


@pytest.mark.parametrize("value", [1, "True", "yes"])
def test_only_true_itself_accepts_pickle(settings: Settings, value: object) -> None:
    settings.FIREFLY_ACCEPT_PICKLE = value
    assert firefly_settings.ACCEPT_PICKLE is False
    settings.FIREFLY_ACCEPT_PICKLE = True
    assert firefly_settings.ACCEPT_PICKLE is True
