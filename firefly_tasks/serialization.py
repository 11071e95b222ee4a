"""Encoding of task arguments and results into the text stored on each row.

Firefly is safe by default: ``json`` (the default) is data only, and reading a JSON row never
runs code, in the consumer or in the web process. It round-trips datetimes, dates, times,
timedeltas, decimals, UUIDs and tuples through tagged objects.

``pickle`` carries any picklable object, and loading a pickle can run any code. So a pickle is
read only where the project enabled it (``FIREFLY_SERIALIZER = "pickle"``, or
``FIREFLY_ACCEPT_PICKLE = True`` while moving back to JSON), and only when the payload carries a
signature made with ``SECRET_KEY``: write access to the task table alone no longer runs code,
whoever holds ``SECRET_KEY`` still can.

The contract: whatever :func:`dumps` accepts, :func:`loads` decodes, in any process and on any
thread (a consumer's threads may have less stack than the web process). Values nest at most
``MAX_DEPTH`` containers deep, ints have at most ``MAX_INT_DIGITS`` digits, and the stored text
is at most ``FIREFLY_MAX_PAYLOAD_BYTES``; anything else raises ``SerializationError`` with the
reason. :func:`loads` raises ``SerializationError`` for any text it cannot decode, never
``RecursionError`` or the like.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import itertools
import json
import math
import pickle
import re
import reprlib
import sys
import uuid
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from django.core.signing import BadSignature, Signer
from django.utils.dateparse import parse_duration
from django.utils.duration import duration_iso_string

from firefly_tasks.conf import settings
from firefly_tasks.exceptions import SerializationError

TAG = "__firefly__"

MAX_DEPTH = 100
"""How deep lists, tuples and dicts may nest in one stored value (arguments are stored as
``[args, kwargs]``, so an argument itself may nest ``MAX_DEPTH - 2`` deep)."""

MAX_INT_DIGITS = sys.int_info.str_digits_check_threshold
"""The most digits of an int in JSON: 640, the lowest limit ``sys.set_int_max_str_digits``
accepts, so that any process can read back what any other wrote."""

_INT_BOUND = 10**MAX_INT_DIGITS

# A value MAX_DEPTH deep is at most this deep as JSON: a dict with the tag key is stored as
# {TAG: "dict", "v": [[key, item], ...]}, three levels, and a tagged scalar adds one.
_MAX_JSON_DEPTH = 3 * MAX_DEPTH + 1

PICKLE_SALT = "firefly_tasks.serialization.pickle"

# Where a value sits in what is being encoded: ``"arguments"``, or (parent, index or key).
# Formatted only for an error message, so encoding builds no strings for it.
Path = str | tuple[Any, int | str]


def _describe(path: Path) -> str:
    steps = []
    while isinstance(path, tuple):
        path, step = path
        steps.append(f"[{step}]" if isinstance(step, int) else f"[{step!r}]")
    return path + "".join(reversed(steps))


def _too_deep(path: Path) -> SerializationError:
    return SerializationError(
        f"{truncate(_describe(path), 80)} nests lists, tuples and dicts more than {MAX_DEPTH} "
        "deep, which Firefly does not store; flatten the value."
    )


# Values JSON stores as they are, whatever surrounds them: no need to look further; and what
# json.loads() gives for a scalar, the same value decoded.
_LEAVES = frozenset({str, bool, type(None)})
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _container(value: list[Any] | tuple[Any, ...] | dict[Any, Any], path: Path, depth: int) -> Any:
    """A list, tuple or dict ``depth`` containers deep as plain JSON values."""
    if depth >= MAX_DEPTH:
        raise _too_deep(path)
    depth += 1
    if not value:  # nothing inside to look at
        return {TAG: "tuple", "v": []} if isinstance(value, tuple) else value
    if isinstance(value, list):
        return _items(value, path, depth)
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": _items(value, path, depth)}
    if TAG in value or not all(isinstance(key, str) for key in value):
        if not all(isinstance(key, str) for key in value):
            raise SerializationError(
                f"{_describe(path)} is a dict with non-string keys, which JSON cannot "
                "round-trip; use string keys or FIREFLY_SERIALIZER = 'pickle'."
            )
        pairs = [[key, _to_json_safe(item, (path, key), depth)] for key, item in value.items()]
        return {TAG: "dict", "v": pairs}
    return {
        key: item if type(item) in _LEAVES else _to_json_safe(item, (path, key), depth)
        for key, item in value.items()
    }


def _items(values: list[Any] | tuple[Any, ...], path: Path, depth: int) -> list[Any]:
    """The items of a list or tuple ``depth`` containers deep, as plain JSON values."""
    return [
        item if type(item) in _LEAVES else _to_json_safe(item, (path, i), depth)
        for i, item in enumerate(values)
    ]


def _to_json_safe(value: Any, path: Path, depth: int) -> Any:
    """``value`` as plain JSON values; ``depth`` is the number of containers around it."""
    kind = type(value)
    if kind in _LEAVES:  # the commonest first, by exact type
        return value
    if kind is list or kind is tuple or kind is dict:
        return _container(value, path, depth)
    # int before anything else: the common case (bool, an int subclass, passes the same test).
    if isinstance(value, int):
        if -_INT_BOUND < value < _INT_BOUND:
            return value
        raise SerializationError(
            f"{_describe(path)} is an int of more than {MAX_INT_DIGITS} digits, which not every "
            "process can read back from JSON; pass it as a string or a Decimal."
        )
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(
                f"{_describe(path)} is {value!r}, which JSON cannot store; pass None or a string "
                "instead, or set FIREFLY_SERIALIZER = 'pickle'."
            )
        return value
    if isinstance(value, (list, tuple, dict)):
        return _container(value, path, depth)
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
    """What :func:`_to_json_safe` made ``value`` (what ``json.loads()`` read) from."""
    if type(value) is list:
        return _decoded(value)
    if type(value) is not dict:
        return value
    tag = value.get(TAG)
    if tag is None:
        return {k: v if type(v) in _JSON_SCALARS else _from_json_safe(v) for k, v in value.items()}
    raw = value["v"]
    if tag == "tuple":
        # A list first: tuple() of a generator would recurse through C, using thread stack.
        return tuple(_decoded(raw))
    if tag == "dict":
        return {key: _from_json_safe(item) for key, item in raw}
    if tag == "datetime":
        return datetime.datetime.fromisoformat(raw)
    if tag == "date":
        return datetime.date.fromisoformat(raw)
    if tag == "time":
        return datetime.time.fromisoformat(raw)
    if tag == "timedelta":
        duration = parse_duration(raw)
        if duration is None:
            raise SerializationError(f"{raw!r} is not a duration.")
        return duration
    if tag == "decimal":
        return decimal.Decimal(raw)
    if tag == "uuid":
        return uuid.UUID(raw)
    raise SerializationError(f"Unknown JSON tag {tag!r}.")


def _decoded(items: list[Any]) -> list[Any]:
    return [item if type(item) in _JSON_SCALARS else _from_json_safe(item) for item in items]


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _json_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (an overestimate for invalid JSON)."""
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def parse_json(text: str) -> Any:
    """``json.loads(text)``, refusing text nested deeper than Firefly ever writes.

    json.loads recurses in C once per level: 10,000 levels overflow a small thread stack
    (a segfault, not a RecursionError). Counting brackets is enough for nearly every payload.
    """
    if text.count("[") + text.count("{") > _MAX_JSON_DEPTH and _json_depth(text) > _MAX_JSON_DEPTH:
        raise SerializationError(
            f"Stored json payload nests more than {_MAX_JSON_DEPTH} levels deep, which Firefly "
            "never writes."
        )
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise SerializationError(f"Stored json payload cannot be decoded: {exc}") from exc


# json.dumps() with options builds an encoder at each call. ensure_ascii (the default) keeps
# the text ASCII: one byte per character in any database encoding, and lone surrogates escaped.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


# JSONEncoder.encode() builds its C encoder at each call; this one is built once (None without
# json's C speedups). No markers: it encodes _to_json_safe()'s fresh tree, which has no cycles.
_C_ENCODER = c_make_encoder and c_make_encoder(
    None, _ENCODER.default, encode_basestring_ascii, None, ":", ",", False, False, False
)


def _encode(safe: Any) -> str:
    """``safe`` (plain JSON values) as compact ASCII JSON text."""
    return "".join(_C_ENCODER(safe, 0)) if _C_ENCODER else _ENCODER.encode(safe)


def canonical_json(value: Any, what: str = "value") -> str:
    """``value`` as JSON with sorted keys: the same text for equal values, however their
    dicts were ordered (a unique task's derived key)."""
    return json.dumps(_to_json_safe(value, what, 0), sort_keys=True, separators=(",", ":"))


def pickle_enabled() -> bool:
    """Whether this project reads pickle payloads at all."""
    return settings.SERIALIZER == "pickle" or settings.ACCEPT_PICKLE


def _signer() -> Signer:
    # Reads SECRET_KEY and SECRET_KEY_FALLBACKS now, so that key rotation is seen.
    return Signer(salt=PICKLE_SALT)


def dumps(value: Any, serializer: str, what: str = "value") -> str:
    """Encode ``value`` as text with ``serializer``; raise SerializationError if it cannot."""
    if value is None and serializer == "json":  # what most tasks return
        return "null"
    if serializer == "json":
        return _json_text(_to_json_safe(value, what, 0), what)
    if serializer == "pickle":
        try:
            pickled = base64.b64encode(pickle.dumps(value)).decode("ascii")
        except Exception as exc:
            raise SerializationError(f"{what} cannot be pickled: {exc}") from exc
        return _bounded(_signer().sign(pickled), what)
    raise SerializationError(f"Unknown serializer {serializer!r}; use 'json' or 'pickle'.")


def dumps_call(args: tuple[Any, ...], kwargs: dict[str, Any], serializer: str) -> str:
    """A call's arguments as stored: ``dumps((list(args), kwargs), serializer, "arguments")``,
    without walking the pair that holds them (``schedule_many()`` encodes one a row)."""
    if serializer != "json":
        return dumps((list(args), kwargs), serializer, "arguments")
    pair = [_container(list(args), ("arguments", 0), 1), _container(kwargs, ("arguments", 1), 1)]
    return _json_text({TAG: "tuple", "v": pair}, "arguments")


def _json_text(safe: Any, what: str) -> str:
    try:
        text = _encode(safe)
    except RecursionError as exc:  # only when the caller's own stack is nearly full
        raise SerializationError(f"{what} cannot be encoded as JSON: {exc}") from exc
    return _bounded(text, what)


def _bounded(text: str, what: str) -> str:
    """``text``, unless it is longer than ``FIREFLY_MAX_PAYLOAD_BYTES``."""
    limit = settings.MAX_PAYLOAD_BYTES
    if len(text) > limit:  # ASCII: characters are bytes
        raise SerializationError(
            f"{what} would be stored as {len(text)} bytes, more than FIREFLY_MAX_PAYLOAD_BYTES "
            f"({limit}); store the data elsewhere and pass its id or location."
        )
    return text


def loads(text: str, serializer: str) -> Any:
    """Decode text written by :func:`dumps`; raise SerializationError if it cannot."""
    if serializer == "json":
        try:
            return _from_json_safe(parse_json(text))
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(f"Stored json payload cannot be decoded: {exc}") from exc
    if serializer == "pickle":
        return _unpickle(text)
    raise SerializationError(f"Unknown serializer {serializer!r}.")


def loads_plain(text: str) -> Any:
    """Read JSON payload text as plain JSON values, for showing it rather than running with it.

    What :func:`dumps` wrote reads with its tagged values unwrapped: tuples as lists, a dict that
    holds the tag key itself as that dict, and datetimes, dates, times, timedeltas, decimals and
    UUIDs as the ISO or str text they are stored as. Nothing but JSON's own values is built, so
    text that :func:`loads` refuses still reads (an unknown tag as its stored value).

    It has no depth guard and wraps no error: it raises what ``json.loads`` raises
    (``ValueError``, ``RecursionError``), and ``TypeError`` for a tag over a value of the wrong
    shape, so that the caller can say why a payload cannot be shown.
    """
    return _to_plain(json.loads(text))


def _to_plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_to_plain(item) for item in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(TAG)
    if tag is None:
        return {key: _to_plain(item) for key, item in value.items()}
    raw = value.get("v")
    if tag == "tuple":
        return [_to_plain(item) for item in raw or ()]
    if tag == "dict":
        return {str(key): _to_plain(item) for key, item in raw or ()}
    return raw


def _unpickle(text: str) -> Any:
    if not pickle_enabled():
        raise SerializationError(
            "Refusing to read a pickle payload: loading a pickle can run any code, and pickle "
            "is not enabled. Set FIREFLY_SERIALIZER = 'pickle', or FIREFLY_ACCEPT_PICKLE = True "
            "to read the pickle rows left while moving to JSON."
        )
    try:
        pickled = _signer().unsign(text)
    except BadSignature as exc:
        if isinstance(text, str) and ":" not in text:
            raise SerializationError(
                "Refusing to read an unsigned pickle payload: it was written before Firefly "
                "signed pickles, or by someone without SECRET_KEY. Schedule the task again."
            ) from exc
        raise SerializationError(
            "Refusing to read a pickle payload whose signature does not match: it was changed, "
            "or signed with another SECRET_KEY."
        ) from exc
    except Exception as exc:
        raise SerializationError(f"Stored pickle payload cannot be decoded: {exc}") from exc
    try:
        return pickle.loads(base64.b64decode(pickled, validate=True))
    except Exception as exc:
        raise SerializationError(f"Stored pickle payload cannot be decoded: {exc}") from exc


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
