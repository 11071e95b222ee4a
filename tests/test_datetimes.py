"""The hot path's datetimes (``firefly_tasks.dialects.datetimes``) give what Django's own
adapter and converters give, in UTC and in any other connection time zone."""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterator

import pytest
from django.db import connection

from firefly_tasks.dialects import datetimes

text_datetimes = pytest.mark.skipif(
    connection.vendor == "postgresql", reason="psycopg adapts datetimes itself"
)

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
VALUES = [
    datetime.datetime(2026, 12, 4, 14, 0, 1, 123456, tzinfo=datetime.UTC),
    datetime.datetime(2026, 12, 4, 14, 0, 1, tzinfo=datetime.UTC),  # no microseconds
    datetime.datetime(2026, 3, 29, 2, 30, tzinfo=PARIS),  # another zone
    datetime.datetime(2026, 12, 4, 14, 0, 1, 5),  # naive
    None,
]


@pytest.fixture(params=[None, "Europe/Paris"], ids=["utc", "paris"])
def zone(request: pytest.FixtureRequest, db: None) -> Iterator[str | None]:
    """The connection's time zone: the default (UTC), or the database's own TIME_ZONE."""
    saved = connection.settings_dict.get("TIME_ZONE")
    connection.settings_dict["TIME_ZONE"] = request.param
    connection.__dict__.pop("timezone", None)
    connection.__dict__.pop("timezone_name", None)
    yield request.param
    connection.settings_dict["TIME_ZONE"] = saved
    connection.__dict__.pop("timezone", None)
    connection.__dict__.pop("timezone_name", None)


@text_datetimes
@pytest.mark.parametrize("value", VALUES, ids=["utc", "utc-whole", "paris", "naive", "none"])
def test_as_text_writes_what_django_writes(
    zone: str | None, value: datetime.datetime | None
) -> None:
    assert datetimes.as_text(connection, value) == connection.ops.adapt_datetimefield_value(value)


@text_datetimes
def test_the_quick_converter_reads_what_django_reads(zone: str | None) -> None:
    original = connection.ops.convert_datetimefield_value  # type: ignore[attr-defined]
    convert = datetimes.quick(original)
    stored: list[str | datetime.datetime | None] = [
        "2026-12-04 14:00:01.123456",
        "2026-12-04 14:00:01",
        datetime.datetime(2026, 12, 4, 14, 0, 1, 5),
        datetime.datetime(2026, 12, 4, 14, 0, 1, tzinfo=datetime.UTC),
        None,
    ]
    if connection.vendor == "mysql":  # mysqlclient returns naive datetimes, never text
        stored = [
            v for v in stored if not isinstance(v, str) and getattr(v, "tzinfo", None) is None
        ]
    for value in stored:
        expected = original(value, None, connection)
        got = convert(value, None, connection)
        assert (got, getattr(got, "tzinfo", None)) == (expected, getattr(expected, "tzinfo", None))


def test_text_the_quick_converter_cannot_read_goes_to_django() -> None:
    seen: list[object] = []

    def original(value: object, expression: object, conn: object) -> object:
        seen.append(value)
        return "django's"

    class UTCConnection:
        timezone = datetime.UTC

    assert datetimes.quick(original)("not a date", None, UTCConnection()) == "django's"
    assert seen == ["not a date"]


def test_quicken_replaces_only_the_backends_datetime_converter() -> None:
    class Ops:
        def convert_datetimefield_value(self, value: object, expression: object, c: object) -> None:
            return None

    ops = Ops()

    def other(value: object, expression: object, c: object) -> object:
        return value

    quickened = datetimes.quicken(
        {0: ([ops.convert_datetimefield_value], "e0"), 1: ([other], "e1")}, ops
    )
    assert quickened[1] == ([other], "e1")
    (chain, expression) = quickened[0]
    assert expression == "e0" and chain[0] is not ops.convert_datetimefield_value
    assert chain[0].__qualname__ == "quick.<locals>.convert"
