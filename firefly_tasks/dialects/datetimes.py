"""Datetimes on the hot path, to and from the naive text SQLite and MariaDB store them as:
what Django's own adapter and converters give, without their settings lookups and time zone
arithmetic for every value (a claimed task has eight datetime columns, a completion writes
two). Only for the default set-up, ``USE_TZ`` with no ``TIME_ZONE`` on the database, whose
connection time zone is UTC; any other goes through Django's own functions.

(PostgreSQL needs neither: psycopg sends and returns aware datetimes itself.)
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

UTC = datetime.UTC

Converter = Callable[[Any, Any, Any], Any]


def as_text(connection: Any, value: Any) -> Any:
    """``value`` as ``connection.ops.adapt_datetimefield_value(value)`` writes it."""
    if (
        value.__class__ is datetime.datetime
        and value.tzinfo is UTC
        and connection.timezone is UTC  # the connection's zone is UTC: no conversion
    ):
        return str(value.replace(tzinfo=None))
    return connection.ops.adapt_datetimefield_value(value)


def quick(original: Converter) -> Converter:
    """A converter that gives what ``original`` (the backend's datetime converter) gives."""

    def convert(value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        if connection.timezone is not UTC:
            return original(value, expression, connection)
        if value.__class__ is str:
            try:
                value = datetime.datetime.fromisoformat(value)
            except ValueError:
                return original(value, expression, connection)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    return convert


def quicken(converters: dict[int, Any], ops: Any) -> dict[int, Any]:
    """``converters`` (a compiler's, by column) with the backend's datetime converter
    replaced by :func:`quick`'s."""
    original = getattr(ops, "convert_datetimefield_value", None)
    if original is None:
        return converters
    fast = quick(original)
    return {
        index: ([fast if c == original else c for c in chain], expression)
        for index, (chain, expression) in converters.items()
    }
