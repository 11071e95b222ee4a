"""Pickle rows run no code unless the project enabled pickle, and then only when signed.

Anyone who can write one row of the task table must not be able to run code: the attack below
stores a pickle whose ``__reduce__`` creates a marker file (harmless, but any call would do).
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.signing import Signer
from django.test import override_settings
from pytest_django import Settings

from firefly_tasks.exceptions import SerializationError
from firefly_tasks.models import TaskModel, TaskStatus
from firefly_tasks.serialization import PICKLE_SALT, dumps, loads
from firefly_tasks.testing import run_pending_tasks
from tests.conftest import Consumer
from tests.testapp import tasks


class CreatesFile:
    """Unpickling this calls ``open(path, "w")``: proof that loading the row ran code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def unsigned_pickle(value: object) -> str:
    """What django_firefly_tasks, Firefly before signing, or an attacker writes."""
    return base64.b64encode(pickle.dumps(value)).decode("ascii")


def poison(row: TaskModel, marker: Path) -> None:
    payload = unsigned_pickle(([CreatesFile(marker)], {}))
    TaskModel.objects.filter(pk=row.pk).update(serializer="pickle", params_data=payload)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "code-ran"


# Real consumers -----------------------------------------------------------------------------


@pytest.mark.slow
def test_consumer_runs_no_pickle_when_pickle_is_off_and_the_queue_flows(
    start_consumer: Callable[..., Consumer], marker: Path
) -> None:
    attacked = tasks.write_note.schedule("attacked")
    poison(attacked, marker)
    behind = tasks.write_note.schedule("behind")

    consumer = start_consumer("--burst")

    assert consumer.wait() == 0, consumer.output()
    assert not marker.exists()
    attacked.refresh_from_db()
    assert attacked.status == TaskStatus.FAILED
    assert attacked.error.startswith("SerializationError:")
    assert "FIREFLY_ACCEPT_PICKLE" in attacked.error
    assert attacked.attempts.count() == 1  # not retried: decoding again cannot help
    behind.refresh_from_db()
    assert behind.status == TaskStatus.COMPLETED


@pytest.mark.slow
def test_consumer_with_pickle_on_refuses_unsigned_rows_and_runs_signed_ones(
    start_consumer: Callable[..., Consumer], marker: Path, settings: Settings
) -> None:
    settings.FIREFLY_SERIALIZER = "pickle"
    attacked = tasks.write_note.schedule("attacked")
    poison(attacked, marker)
    value = {frozenset({1, 2}): {3, 4}}
    signed = tasks.echo.schedule(value)

    consumer = start_consumer("--burst", FIREFLY_SERIALIZER="pickle")

    assert consumer.wait() == 0, consumer.output()
    assert not marker.exists()
    attacked.refresh_from_db()
    assert attacked.status == TaskStatus.FAILED
    assert "unsigned pickle" in attacked.error
    signed.refresh_from_db()
    assert signed.status == TaskStatus.COMPLETED, signed.error
    assert signed.returned == value


# In this process ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_run_pending_tasks_runs_no_pickle_when_pickle_is_off(marker: Path) -> None:
    attacked = tasks.write_note.schedule("attacked")
    poison(attacked, marker)

    run_pending_tasks()

    assert not marker.exists()
    attacked.refresh_from_db()
    assert attacked.status == TaskStatus.FAILED
    assert "FIREFLY_ACCEPT_PICKLE" in attacked.error


@pytest.mark.django_db
@pytest.mark.parametrize("sign", [False, True], ids=["unsigned", "signed"])
def test_returned_and_params_never_unpickle_when_pickle_is_off(marker: Path, sign: bool) -> None:
    payload = unsigned_pickle(CreatesFile(marker))
    if sign:  # even a genuine signature does not help while pickle is off
        payload = Signer(salt=PICKLE_SALT).sign(payload)
    row = tasks.echo.schedule(1)
    TaskModel.objects.filter(pk=row.pk).update(
        serializer="pickle", params_data=payload, returned_data=payload
    )
    row.refresh_from_db()

    with pytest.raises(SerializationError, match="FIREFLY_ACCEPT_PICKLE"):
        row.returned  # noqa: B018
    with pytest.raises(SerializationError, match="FIREFLY_ACCEPT_PICKLE"):
        row.params  # noqa: B018
    assert not marker.exists()


@pytest.mark.django_db
def test_accept_pickle_reads_signed_rows_left_after_moving_to_json(
    settings: Settings,
) -> None:
    settings.FIREFLY_SERIALIZER = "pickle"
    row = tasks.echo.schedule({1, 2})
    settings.FIREFLY_SERIALIZER = "json"
    settings.FIREFLY_ACCEPT_PICKLE = True
    later = tasks.echo.schedule([3])

    assert run_pending_tasks() == 2

    row.refresh_from_db()
    assert row.status == TaskStatus.COMPLETED, row.error
    assert row.returned == {1, 2}
    assert row.serializer == "pickle"  # the row keeps its serializer, its result too
    later.refresh_from_db()
    assert later.serializer == "json"
    assert later.returned == [3]


# Signing ------------------------------------------------------------------------------------


@override_settings(FIREFLY_SERIALIZER="pickle")
def test_signed_pickle_round_trips() -> None:
    value = {frozenset({1}): {2, 3}}

    assert loads(dumps(value, "pickle"), "pickle") == value


@override_settings(FIREFLY_SERIALIZER="pickle")
def test_unsigned_pickle_is_refused_as_the_old_format(marker: Path) -> None:
    with pytest.raises(SerializationError, match=r"unsigned pickle.*before Firefly signed"):
        loads(unsigned_pickle(CreatesFile(marker)), "pickle")
    assert not marker.exists()


@override_settings(FIREFLY_SERIALIZER="pickle")
def test_tampered_pickle_is_refused(marker: Path) -> None:
    text = dumps("harmless", "pickle")
    _, signature = text.split(":")

    with pytest.raises(SerializationError, match="signature does not match"):
        loads(f"{unsigned_pickle(CreatesFile(marker))}:{signature}", "pickle")
    assert not marker.exists()


@override_settings(FIREFLY_SERIALIZER="pickle")
def test_pickle_signed_for_another_purpose_or_key_is_refused(marker: Path) -> None:
    payload = unsigned_pickle(CreatesFile(marker))

    for signer in (Signer(salt="another.salt"), Signer(), Signer(key="x", salt=PICKLE_SALT)):
        with pytest.raises(SerializationError, match="signature does not match"):
            loads(signer.sign(payload), "pickle")
    assert not marker.exists()


def test_pickle_signed_with_a_rotated_key_is_still_read(settings: Settings) -> None:
    settings.FIREFLY_SERIALIZER = "pickle"
    text = dumps([1, 2], "pickle")
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-key"

    assert loads(text, "pickle") == [1, 2]
