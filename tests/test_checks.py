"""System checks of Firefly's configuration: ``firefly_tasks.checks``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from django.core.checks import CheckMessage, Error, Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.dummy.base import DatabaseWrapper as DummyDatabaseWrapper
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper
from django.test import override_settings
from pytest_django import Settings

from firefly_tasks.checks import (
    check_databases,
    check_settings,
    check_sqlite_options,
    check_task_aliases,
)
from firefly_tasks.dialects import dialect
from firefly_tasks.dialects.postgresql import PostgreSQLDialect

pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def ids(messages: list[CheckMessage]) -> list[str | None]:
    return [message.id for message in messages]


def test_default_settings_pass_every_check() -> None:
    assert check_settings() == []
    assert check_task_aliases() == []
    assert check_sqlite_options() == []


def test_test_database_passes_the_database_checks(db: None) -> None:
    assert check_databases(databases=["default"]) == []


# E001 - E007 ---------------------------------------------------------------------------------


@override_settings(FIREFLY_SERIALIZER="yaml")
def test_unknown_serializer_is_error_e001() -> None:
    (message,) = check_settings()

    assert isinstance(message, Error)
    assert message.id == "firefly_tasks.E001"
    assert "'yaml'" in message.msg
    assert message.hint is not None
    assert "json, pickle" in message.hint


@override_settings(FIREFLY_SERIALIZER="pickle")
def test_pickle_serializer_is_accepted() -> None:
    assert check_settings() == []


@override_settings(FIREFLY_QUEUES=["emails", "reports"], FIREFLY_DEFAULT_QUEUE="default")
def test_default_queue_missing_from_firefly_queues_is_error_e002() -> None:
    (message,) = check_settings()

    assert message.id == "firefly_tasks.E002"
    assert "'default'" in message.msg


@override_settings(FIREFLY_QUEUES=["emails", "default"])
def test_default_queue_listed_in_firefly_queues_passes() -> None:
    assert check_settings() == []


@pytest.mark.parametrize(
    "setting", ["FIREFLY_MAX_RETRIES", "FIREFLY_RETRY_DELAY", "FIREFLY_RETRY_BACKOFF_MAX"]
)
@pytest.mark.parametrize("value", [-1, "3", 1.5, True, None])
def test_retry_setting_that_is_not_a_non_negative_int_is_error_e003(
    setting: str, value: object
) -> None:
    with override_settings(**{setting: value}):
        messages = check_settings()

    assert ids(messages) == ["firefly_tasks.E003"]
    assert setting in messages[0].msg


@override_settings(FIREFLY_MAX_RETRIES=0, FIREFLY_RETRY_DELAY=0, FIREFLY_RETRY_BACKOFF_MAX=0)
def test_zero_retry_settings_are_accepted() -> None:
    assert check_settings() == []


@pytest.mark.parametrize(
    ("nap", "poll"), [(0, 0.2), (-0.1, 0.2), (0.5, 0.2)], ids=["zero", "negative", "above-poll"]
)
def test_nap_time_not_positive_or_above_poll_interval_is_error_e004(
    nap: float, poll: float
) -> None:
    with override_settings(FIREFLY_CONSUMER_NAP_TIME=nap, FIREFLY_MAX_POLL_INTERVAL=poll):
        messages = check_settings()

    assert ids(messages) == ["firefly_tasks.E004"]
    assert f"They are {float(nap)} and {float(poll)}." == messages[0].hint


@pytest.mark.parametrize(
    ("nap", "poll"), [("fast", 0.2), (None, 0.2), (0.001, [1])], ids=["text", "none", "list"]
)
def test_nap_time_or_poll_interval_that_is_not_a_number_is_error_e004(
    nap: object, poll: object
) -> None:
    with override_settings(FIREFLY_CONSUMER_NAP_TIME=nap, FIREFLY_MAX_POLL_INTERVAL=poll):
        messages = check_settings()

    assert ids(messages) == ["firefly_tasks.E004"]
    assert messages[0].hint is not None
    assert messages[0].hint.startswith("They must be numbers of seconds")


@override_settings(FIREFLY_CONSUMER_NAP_TIME=0.2, FIREFLY_MAX_POLL_INTERVAL=0.2)
def test_nap_time_equal_to_poll_interval_is_accepted() -> None:
    assert check_settings() == []


@pytest.mark.parametrize(
    ("interval", "timeout"),
    [(0, 30), (-1, 30), (30, 30), (45, 30), ("often", 30), (5, None)],
    ids=["zero", "negative", "equal", "above", "text", "none"],
)
def test_heartbeat_interval_not_below_worker_timeout_is_error_e006(
    interval: object, timeout: object
) -> None:
    with override_settings(FIREFLY_HEARTBEAT_INTERVAL=interval, FIREFLY_WORKER_TIMEOUT=timeout):
        messages = check_settings()

    assert ids(messages) == ["firefly_tasks.E006"]


@override_settings(FIREFLY_HEARTBEAT_INTERVAL=0.5, FIREFLY_WORKER_TIMEOUT=2)
def test_short_heartbeat_and_timeout_are_accepted() -> None:
    assert check_settings() == []


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("FIREFLY_MAX_LOST_ATTEMPTS", -1),
        ("FIREFLY_MAX_LOST_ATTEMPTS", 1.5),
        ("FIREFLY_MAX_SNOOZES", -1),
        ("FIREFLY_MAX_SNOOZES", "100"),
        ("FIREFLY_PREVIEW_LENGTH", 0),
        ("FIREFLY_CLAIM_BATCH_SIZE", 0),
        ("FIREFLY_CLAIM_BATCH_SIZE", "100"),
        ("FIREFLY_ROLLUP_RETENTION_DAYS", 0),
        ("FIREFLY_ROLLUP_RETENTION_DAYS", "90"),
        ("FIREFLY_GROUP_COMMIT_WINDOW", -0.001),
        ("FIREFLY_GROUP_COMMIT_WINDOW", "5ms"),
        ("FIREFLY_GROUP_COMMIT_WINDOW", True),
    ],
)
def test_bad_count_or_window_is_error_e007(setting: str, value: object) -> None:
    with override_settings(**{setting: value}):
        messages = check_settings()

    assert ids(messages) == ["firefly_tasks.E007"]
    assert setting in messages[0].msg
    assert messages[0].hint is not None
    assert repr(value) in messages[0].hint


@override_settings(
    FIREFLY_MAX_LOST_ATTEMPTS=0, FIREFLY_CLAIM_BATCH_SIZE=1, FIREFLY_GROUP_COMMIT_WINDOW=0
)
def test_smallest_counts_and_no_group_commit_are_accepted() -> None:
    assert check_settings() == []


@pytest.mark.parametrize("value", [1, "yes", None], ids=repr)
def test_accept_pickle_that_is_not_a_bool_is_error_e008(value: object) -> None:
    with override_settings(FIREFLY_ACCEPT_PICKLE=value):
        (message,) = check_settings()

    assert isinstance(message, Error)
    assert message.id == "firefly_tasks.E008"
    assert message.hint is not None
    assert repr(value) in message.hint


@override_settings(FIREFLY_ACCEPT_PICKLE=1)
def test_accept_pickle_that_is_not_a_bool_reads_no_pickle() -> None:
    from firefly_tasks.serialization import pickle_enabled

    assert not pickle_enabled()


@pytest.mark.parametrize("value", [0, 1023, "1MiB", 1.5e6, True], ids=repr)
def test_payload_limit_that_is_not_an_int_of_at_least_1024_is_error_e009(value: object) -> None:
    with override_settings(FIREFLY_MAX_PAYLOAD_BYTES=value):
        (message,) = check_settings()

    assert isinstance(message, Error)
    assert message.id == "firefly_tasks.E009"
    assert message.hint is not None
    assert repr(value) in message.hint


@pytest.mark.parametrize("value", [0, -5, "30", True, float("inf")], ids=repr)
def test_a_task_timeout_that_is_not_a_positive_number_is_error_e010(value: object) -> None:
    with override_settings(FIREFLY_TASK_TIMEOUT=value):
        (message,) = check_settings()

    assert message.id == "firefly_tasks.E010"
    assert message.hint is not None and repr(value) in message.hint


@pytest.mark.parametrize("value", [0, None, "10", False], ids=repr)
def test_a_timeout_grace_that_is_not_a_positive_number_is_error_e010(value: object) -> None:
    with override_settings(FIREFLY_TIMEOUT_GRACE=value):
        (message,) = check_settings()

    assert message.id == "firefly_tasks.E010"
    assert message.hint is not None and repr(value) in message.hint


@override_settings(FIREFLY_TASK_TIMEOUT=2.5, FIREFLY_TIMEOUT_GRACE=0.5)
def test_a_task_timeout_in_seconds_passes() -> None:
    assert check_settings() == []


@override_settings(FIREFLY_ACCEPT_PICKLE=True, FIREFLY_MAX_PAYLOAD_BYTES=1024)
def test_accepting_pickle_and_the_smallest_payload_limit_pass() -> None:
    assert check_settings() == []


def test_payload_limit_above_8_mib_is_warning_w005_only_with_mariadb(
    settings: Settings,
) -> None:
    settings.FIREFLY_MAX_PAYLOAD_BYTES = 8 * 1024 * 1024 + 1
    mariadb = {"ENGINE": "django.db.backends.mysql", "NAME": "x"}
    settings.DATABASES = {**settings.DATABASES, "other": mariadb}

    (message,) = check_settings()

    assert isinstance(message, Warning)
    assert message.id == "firefly_tasks.W005"
    assert "max_allowed_packet" in message.msg
    settings.DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}}
    assert check_settings() == []


@override_settings(
    FIREFLY_SERIALIZER="xml",
    FIREFLY_QUEUES=["emails"],
    FIREFLY_MAX_RETRIES=-1,
    FIREFLY_CONSUMER_NAP_TIME=0,
)
def test_every_problem_is_reported_at_once() -> None:
    assert ids(check_settings()) == [
        "firefly_tasks.E001",
        "firefly_tasks.E002",
        "firefly_tasks.E003",
        "firefly_tasks.E004",
    ]


# Both databases: on Django 6.x `check` checks every database (JSONField asks SQLite).
@pytest.mark.django_db(databases=["default", "queue"])
@override_settings(FIREFLY_SERIALIZER="yaml")
def test_checks_are_registered_with_django() -> None:
    with pytest.raises(SystemCheckError, match=r"firefly_tasks\.E001"):
        call_command("check")


# W002 / W003: SQLite options -------------------------------------------------------------------


def sqlite_database(**options: object) -> dict[str, object]:
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3", "OPTIONS": options}


def with_database(alias: str, config: Mapping[str, object]) -> override_settings:
    from django.conf import settings

    return override_settings(DATABASES={**settings.DATABASES, alias: config})


def test_sqlite_without_immediate_transactions_is_warning_w002() -> None:
    with with_database("extra", sqlite_database(timeout=20)):
        (message,) = check_sqlite_options()

    assert isinstance(message, Warning)
    assert message.id == "firefly_tasks.W002"
    assert "'extra'" in message.msg


def test_sqlite_with_immediate_transactions_in_any_case_passes() -> None:
    with with_database("extra", sqlite_database(transaction_mode="immediate", timeout=20)):
        assert check_sqlite_options() == []


@pytest.mark.parametrize("timeout", [0, 1, 4.9])
def test_sqlite_with_a_short_timeout_is_warning_w003(timeout: float) -> None:
    with with_database("extra", sqlite_database(transaction_mode="IMMEDIATE", timeout=timeout)):
        messages = check_sqlite_options()

    assert ids(messages) == ["firefly_tasks.W003"]
    assert "'extra'" in messages[0].msg


def test_sqlite_without_options_gets_w002_only_as_the_default_timeout_is_enough() -> None:
    with with_database("extra", {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}):
        assert ids(check_sqlite_options()) == ["firefly_tasks.W002"]


def test_other_engines_are_not_checked_for_sqlite_options() -> None:
    postgres = {"ENGINE": "django.db.backends.postgresql", "NAME": "x", "OPTIONS": {}}
    with with_database("extra", postgres):
        assert check_sqlite_options() == []


# W001 / E005: checks that look at a connection --------------------------------------------------


InstallConnection = Callable[[type[BaseDatabaseWrapper], dict[str, object]], BaseDatabaseWrapper]


@pytest.fixture
def extra_connection() -> Iterator[InstallConnection]:
    """Install a connection under the alias ``extra``; closed and removed afterwards."""
    installed = []

    def install(
        wrapper_class: type[BaseDatabaseWrapper], config: dict[str, object]
    ) -> BaseDatabaseWrapper:
        # Fills in the keys Django's wrappers expect; only "default" is a valid lone alias.
        settings_dict = connections.configure_settings({"default": dict(config)})["default"]
        wrapper = wrapper_class(settings_dict, alias="extra")
        connections["extra"] = wrapper
        installed.append(wrapper)
        return wrapper

    # The database checks look at Firefly's database only (FIREFLY_DATABASE): make it "extra".
    with override_settings(FIREFLY_DATABASE="extra"):
        yield install
    for wrapper in installed:
        wrapper.close()
    if installed:
        del connections["extra"]


def test_sqlite_file_not_in_wal_mode_is_warning_w001(
    db: None, tmp_path: Path, extra_connection: InstallConnection
) -> None:
    path = tmp_path / "rollback-journal.sqlite3"
    sqlite3.connect(path).close()
    extra_connection(SQLiteDatabaseWrapper, {"ENGINE": "django.db.backends.sqlite3", "NAME": path})

    (message,) = check_databases(databases=["extra"])

    assert isinstance(message, Warning)
    assert message.id == "firefly_tasks.W001"
    assert "delete journal mode" in message.msg


def test_sqlite_file_in_wal_mode_passes(
    db: None, tmp_path: Path, extra_connection: InstallConnection
) -> None:
    path = tmp_path / "wal.sqlite3"
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA journal_mode=WAL")
    extra_connection(SQLiteDatabaseWrapper, {"ENGINE": "django.db.backends.sqlite3", "NAME": path})

    assert check_databases(databases=["extra"]) == []


def test_the_database_checks_leave_the_projects_other_databases_alone(
    extra_connection: InstallConnection,
) -> None:
    extra_connection(DummyDatabaseWrapper, {"ENGINE": "django.db.backends.dummy"})

    with override_settings(FIREFLY_DATABASE="default"):
        assert check_databases(databases=["extra"]) == []


def test_unsupported_database_is_error_e005(extra_connection: InstallConnection) -> None:
    extra_connection(DummyDatabaseWrapper, {"ENGINE": "django.db.backends.dummy"})

    (message,) = check_databases(databases=["extra"])

    assert isinstance(message, Error)
    assert message.id == "firefly_tasks.E005"


def test_only_postgresql_through_psycopg_3_can_listen() -> None:
    connection = connections["default"]
    expected = connection.vendor == "postgresql"  # the suite's PostgreSQL runs psycopg 3
    assert dialect(connection).can_listen() is expected


@pytest.mark.skipif(
    connections["default"].vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's"
)
def test_postgresql_through_psycopg2_warns_w006_that_consumers_poll(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert check_databases(databases=["default"]) == []  # psycopg 3: listens
    # psycopg2 cannot be Django's driver while psycopg 3 is installed: stand in for it.
    monkeypatch.setattr(PostgreSQLDialect, "can_listen", lambda self: False)

    (message,) = check_databases(databases=["default"])

    assert isinstance(message, Warning)
    assert message.id == "firefly_tasks.W006"
    assert "psycopg2" in message.msg
    with override_settings(FIREFLY_LISTEN_NOTIFY=False):  # polling intended: nothing to say
        assert check_databases(databases=["default"]) == []


def test_database_checks_only_look_at_the_databases_asked_for() -> None:
    assert check_databases(databases=None) == []


# W004: aliases ------------------------------------------------------------------------------


@override_settings(FIREFLY_TASK_ALIASES={"old.add": "tests.testapp.tasks.add"})
def test_alias_to_a_registered_task_passes() -> None:
    assert check_task_aliases() == []


@override_settings(
    FIREFLY_TASK_ALIASES={"old.add": "tests.testapp.tasks.add", "old.gone": "new.gone"}
)
def test_alias_to_an_unregistered_task_is_warning_w004() -> None:
    (message,) = check_task_aliases()

    assert isinstance(message, Warning)
    assert message.id == "firefly_tasks.W004"
    assert "'old.gone'" in message.msg
    assert "'new.gone'" in message.msg
