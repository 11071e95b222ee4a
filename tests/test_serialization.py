"""Encoding of arguments and results: ``firefly_tasks.serialization``."""

from __future__ import annotations

import base64
import datetime
import decimal
import fractions
import json
import math
import pickle
import uuid
import zoneinfo

import pytest
from django.core.signing import Signer
from django.test import override_settings

from firefly_tasks.exceptions import SerializationError
from firefly_tasks.serialization import TAG, call_preview, dumps, loads, truncate, value_preview


def json_round_trip(value: object) -> object:
    return loads(dumps(value, "json"), "json")


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -7,
        1.5,
        "text ünïcode",
        [1, "a", None],
        {"a": 1, "b": [2, 3]},
        datetime.date(2024, 2, 29),
        datetime.time(23, 59, 58, 999999),
        datetime.time(8, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))),
        datetime.timedelta(days=3, hours=4, seconds=5, microseconds=123456),
        datetime.timedelta(microseconds=1),
        -datetime.timedelta(days=1, seconds=1),
        decimal.Decimal("1.10"),
        decimal.Decimal("-0.000000000000000000001"),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
    ],
    ids=repr,
)
def test_json_round_trips_value_with_its_type(value):
    result = json_round_trip(value)

    assert result == value
    assert type(result) is type(value)


def test_json_round_trips_aware_datetime_to_the_same_instant_and_offset():
    value = datetime.datetime(2024, 7, 1, 12, 30, 15, 123, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))

    result = json_round_trip(value)

    assert isinstance(result, datetime.datetime)
    assert result == value
    assert result.utcoffset() == datetime.timedelta(hours=2)


def test_json_round_trips_naive_datetime_as_naive():
    value = datetime.datetime(2024, 1, 2, 3, 4, 5, 6)

    result = json_round_trip(value)

    assert result == value
    assert isinstance(result, datetime.datetime)
    assert result.tzinfo is None


def test_json_keeps_datetime_and_date_apart():
    # datetime is a subclass of date: the more specific type must win.
    assert type(json_round_trip(datetime.datetime(2024, 1, 1))) is datetime.datetime
    assert type(json_round_trip(datetime.date(2024, 1, 1))) is datetime.date


def test_json_round_trips_nested_tuples_inside_lists_and_dicts():
    value = {"pair": (1, (2, (3,))), "items": [(1, 2), ()], "empty": ()}

    result = json_round_trip(value)

    assert result == value
    assert isinstance(result["pair"][1][1], tuple)
    assert isinstance(result["items"][0], tuple)
    assert result["empty"] == ()


def test_json_round_trips_the_call_shape_of_args_and_kwargs():
    value = ([1, (2, 3)], {"when": datetime.date(2024, 1, 1)})

    assert json_round_trip(value) == value


def test_json_round_trips_dict_that_contains_the_tag_key():
    value = {TAG: "datetime", "v": "not a datetime"}

    assert json_round_trip(value) == value


def test_json_round_trips_nested_dict_with_the_tag_key_and_tagged_values():
    value = {"outer": {TAG: (1, decimal.Decimal("2")), "v": [uuid.UUID(int=1)]}}

    result = json_round_trip(value)

    assert result == value
    assert isinstance(result["outer"][TAG], tuple)


def test_json_text_is_plain_json_that_the_admin_can_read():
    text = dumps({"when": datetime.date(2024, 5, 6), "n": 1}, "json")

    assert json.loads(text) == {"when": {TAG: "date", "v": "2024-05-06"}, "n": 1}


def test_json_refuses_arbitrary_objects_with_a_clear_error():
    with pytest.raises(SerializationError, match=r"arguments\[0\]\[1\] is a object.*pickle"):
        dumps([[1, object()]], "json", what="arguments")


def test_json_refuses_sets():
    with pytest.raises(SerializationError, match="set"):
        dumps({1, 2}, "json")


@pytest.mark.parametrize("mapping", [{1: "a"}, {"a": {(1, 2): "b"}}, {None: 1}], ids=repr)
def test_json_refuses_dicts_with_non_string_keys(mapping):
    with pytest.raises(SerializationError, match="non-string keys"):
        dumps(mapping, "json")


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=repr)
def test_json_refuses_nan_and_infinity_with_a_serialization_error(number):
    with pytest.raises(SerializationError, match=r"value\['x'\]\[0\]"):
        dumps({"x": [number]}, "json")


@override_settings(FIREFLY_SERIALIZER="pickle")
def test_pickle_round_trips_what_json_cannot_carry():
    value = {frozenset({1, 2}): fractions.Fraction(1, 3), "set": {3, 4}, "nan": math.inf}

    text = dumps(value, "pickle")

    assert loads(text, "pickle") == value
    assert pickle.loads(base64.b64decode(text.rsplit(":", 1)[0])) == value


def test_pickle_text_is_base64_ascii_then_its_signature():
    text = dumps([1, 2], "pickle")

    pickled, signature = text.split(":")
    assert text.isascii()
    assert base64.b64encode(base64.b64decode(pickled)).decode() == pickled
    assert signature == Signer(salt="firefly_tasks.serialization.pickle").signature(pickled)


def test_pickle_refuses_unpicklable_values_with_a_serialization_error():
    with pytest.raises(SerializationError, match="cannot be pickled"):
        dumps(lambda: None, "pickle", what="the return value")


@pytest.mark.parametrize(
    ("text", "serializer"),
    [
        ("{not json", "json"),
        ("", "json"),
        (json.dumps({TAG: "datetime", "v": "yesterday"}), "json"),
        (json.dumps({TAG: "decimal"}), "json"),
        (json.dumps({TAG: "mystery", "v": 1}), "json"),
        ("!!! not base64 !!!", "pickle"),
        (Signer(salt="firefly_tasks.serialization.pickle").sign("!!! not base64 !!!"), "pickle"),
        (Signer(salt="firefly_tasks.serialization.pickle").sign("bm90IGEgcGlja2xl"), "pickle"),
        ("ünïcode", "pickle"),
    ],
)
@override_settings(FIREFLY_SERIALIZER="pickle")
def test_undecodable_text_raises_serialization_error(text, serializer):
    with pytest.raises(SerializationError):
        loads(text, serializer)


def test_unknown_serializer_is_refused_both_ways():
    with pytest.raises(SerializationError, match="Unknown serializer 'yaml'"):
        dumps(1, "yaml")
    with pytest.raises(SerializationError, match="Unknown serializer 'yaml'"):
        loads("1", "yaml")


def test_call_preview_renders_args_and_kwargs_like_a_call():
    assert call_preview((1, "a"), {"key": [2]}, 200) == "1, 'a', key=[2]"


def test_previews_are_cut_to_length_with_an_ellipsis():
    preview = value_preview("x" * 500, 40)

    assert len(preview) == 40
    assert preview.endswith("…")
    assert truncate("short", 40) == "short"
