"""Encoding of task arguments and results into the text stored on each row.

``json`` (the default) is safe to read anywhere, including the admin. It round-trips
datetimes, dates, times, timedeltas, decimals, UUIDs and tuples through tagged objects.
``pickle`` stores base64-encoded pickles as django_firefly_tasks did: it carries any
picklable object, but whoever can write the task table can run code in the consumer.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import pickle
import reprlib
import uuid
from typing import Any

from django.utils.dateparse import parse_duration
from django.utils.duration import duration_iso_string

from firefly_tasks.exceptions import SerializationError

TAG = "__firefly__"


# Where a value sits in what is being encoded: ``"arguments"``, or (parent, index or key).
# Formatted only for an error message, so encoding builds no strings for it.
Path = str | tuple[Any, int | str]


def _describe(path: Path) -> str:
    steps = []
    while isinstance(path, tuple):
        path, step = path
        steps.append(f"[{step}]" if isinstance(step, int) else f"[{step!r}]")
    return path + "".join(reversed(steps))


def _to_json_safe(value: Any, path: Path) -> Any:
    # bool and int before anything else: they are the common case and bool is an int subclass.
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(
                f"{_describe(path)} is {value!r}, which JSON cannot store; pass None or a string "
                "instead, or set FIREFLY_SERIALIZER = 'pickle'."
            )
        return value
    if isinstance(value, list):
        return [_to_json_safe(item, (path, i)) for i, item in enumerate(value)]
    if isinstance(value, tuple):
        items = [_to_json_safe(item, (path, i)) for i, item in enumerate(value)]
        return {TAG: "tuple", "v": items}
    if isinstance(value, dict):
        if TAG in value or not all(isinstance(key, str) for key in value):
            if not all(isinstance(key, str) for key in value):
                raise SerializationError(
                    f"{_describe(path)} is a dict with non-string keys, which JSON cannot "
                    "round-trip; use string keys or FIREFLY_SERIALIZER = 'pickle'."
                )
            pairs = [[key, _to_json_safe(item, (path, key))] for key, item in value.items()]
            return {TAG: "dict", "v": pairs}
        return {key: _to_json_safe(item, (path, key)) for key, item in value.items()}
    if isinstance(value, datetime.datetime):
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, datetime.date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, datetime.time):
        return {TAG: "time", "v": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {TAG: "timedelta", "v": duration_iso_string(value)}
    if isinstance(value, decimal.Decimal):
        return {TAG: "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {TAG: "uuid", "v": str(value)}
    raise SerializationError(
        f"{_describe(path)} is a {type(value).__name__}, which the JSON serializer cannot store. "
        "Pass primitive values (ids rather than model instances), or set "
        "FIREFLY_SERIALIZER = 'pickle'."
    )


def _from_json_safe(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json_safe(item) for item in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(TAG)
    if tag is None:
        return {key: _from_json_safe(item) for key, item in value.items()}
    raw = value["v"]
    if tag == "tuple":
        return tuple(_from_json_safe(item) for item in raw)
    if tag == "dict":
        return {key: _from_json_safe(item) for key, item in raw}
    if tag == "datetime":
        return datetime.datetime.fromisoformat(raw)
    if tag == "date":
        return datetime.date.fromisoformat(raw)
    if tag == "time":
        return datetime.time.fromisoformat(raw)
    if tag == "timedelta":
        return parse_duration(raw)
    if tag == "decimal":
        return decimal.Decimal(raw)
    if tag == "uuid":
        return uuid.UUID(raw)
    raise SerializationError(f"Unknown JSON tag {tag!r}.")


# json.dumps() with options builds an encoder at each call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def dumps(value: Any, serializer: str, what: str = "value") -> str:
    """Encode ``value`` as text with ``serializer``; raise SerializationError if it cannot."""
    if serializer == "json":
        return _ENCODER.encode(_to_json_safe(value, what))
    if serializer == "pickle":
        try:
            return base64.b64encode(pickle.dumps(value)).decode("ascii")
        except Exception as exc:
            raise SerializationError(f"{what} cannot be pickled: {exc}") from exc
    raise SerializationError(f"Unknown serializer {serializer!r}; use 'json' or 'pickle'.")


def loads(text: str, serializer: str) -> Any:
    """Decode text written by :func:`dumps`. Pickle is only ever read by the consumer."""
    try:
        if serializer == "json":
            return _from_json_safe(json.loads(text))
        if serializer == "pickle":
            return pickle.loads(base64.b64decode(text.encode("ascii")))
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"Stored {serializer} payload cannot be decoded: {exc}") from exc
    raise SerializationError(f"Unknown serializer {serializer!r}.")


_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 8
_repr.maxlevel = 3


def call_preview(args: tuple[Any, ...], kwargs: dict[str, Any], length: int) -> str:
    """A short, human-readable rendering of call arguments: ``1, 'a', key=2``."""
    parts = [_repr.repr(arg) for arg in args]
    parts += [f"{key}={_repr.repr(value)}" for key, value in kwargs.items()]
    return truncate(", ".join(parts), length)


def value_preview(value: Any, length: int) -> str:
    if value is None:
        return "None"
    return truncate(_repr.repr(value), length)


def truncate(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"
