"""Encoding of arguments and results: ``firefly_tasks.serialization``."""

from __future__ import annotations

import base64
import contextlib
import datetime
import decimal
import fractions
import json
import math
import pickle
import subprocess
import sys
import uuid
import zoneinfo
from collections.abc import Callable
from pathlib import Path

import hypothesis
import pytest
from django.core.signing import Signer
from django.test import override_settings
from hypothesis import strategies as st
from pytest_django import Settings

from firefly_tasks import serialization
from firefly_tasks.exceptions import SerializationError
from firefly_tasks.models import TaskModel, TaskStatus
from firefly_tasks.serialization import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    TAG,
    call_preview,
    dumps,
    dumps_call,
    loads,
    loads_plain,
    truncate,
    value_preview,
)
from firefly_tasks.testing import run_pending_tasks
from tests.conftest import Consumer
from tests.testapp import tasks


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
def test_json_round_trips_value_with_its_type(value: object) -> None:
    result = json_round_trip(value)

    assert result == value
    assert type(result) is type(value)


def test_json_round_trips_aware_datetime_to_the_same_instant_and_offset() -> None:
    value = datetime.datetime(2024, 7, 1, 12, 30, 15, 123, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))

    result = json_round_trip(value)

    assert isinstance(result, datetime.datetime)
    assert result == value
    assert result.utcoffset() == datetime.timedelta(hours=2)


def test_json_round_trips_naive_datetime_as_naive() -> None:
    value = datetime.datetime(2024, 1, 2, 3, 4, 5, 6)

    result = json_round_trip(value)

    assert result == value
    assert isinstance(result, datetime.datetime)
    assert result.tzinfo is None


def test_json_keeps_datetime_and_date_apart() -> None:
    # datetime is a subclass of date: the more specific type must win.
    assert type(json_round_trip(datetime.datetime(2024, 1, 1))) is datetime.datetime
    assert type(json_round_trip(datetime.date(2024, 1, 1))) is datetime.date


def test_json_round_trips_nested_tuples_inside_lists_and_dicts() -> None:
    value = {"pair": (1, (2, (3,))), "items": [(1, 2), ()], "empty": ()}

    result = json_round_trip(value)

    assert result == value
    assert isinstance(result["pair"][1][1], tuple)
    assert isinstance(result["items"][0], tuple)
    assert result["empty"] == ()


def test_json_round_trips_the_call_shape_of_args_and_kwargs() -> None:
    value = ([1, (2, 3)], {"when": datetime.date(2024, 1, 1)})

    assert json_round_trip(value) == value


def test_json_round_trips_dict_that_contains_the_tag_key() -> None:
    value = {TAG: "datetime", "v": "not a datetime"}

    assert json_round_trip(value) == value


def test_json_round_trips_nested_dict_with_the_tag_key_and_tagged_values() -> None:
    value = {"outer": {TAG: (1, decimal.Decimal("2")), "v": [uuid.UUID(int=1)]}}

    result = json_round_trip(value)

    assert result == value
    assert isinstance(result["outer"][TAG], tuple)


def test_json_text_is_plain_json_that_the_admin_can_read() -> None:
    text = dumps({"when": datetime.date(2024, 5, 6), "n": 1}, "json")

    assert json.loads(text) == {"when": {TAG: "date", "v": "2024-05-06"}, "n": 1}


def test_json_refuses_arbitrary_objects_with_a_clear_error() -> None:
    with pytest.raises(SerializationError, match=r"arguments\[0\]\[1\] is a object.*pickle"):
        dumps([[1, object()]], "json", what="arguments")


def test_json_refuses_sets() -> None:
    with pytest.raises(SerializationError, match="set"):
        dumps({1, 2}, "json")


@pytest.mark.parametrize("mapping", [{1: "a"}, {"a": {(1, 2): "b"}}, {None: 1}], ids=repr)
def test_json_refuses_dicts_with_non_string_keys(mapping: object) -> None:
    with pytest.raises(SerializationError, match="non-string keys"):
        dumps(mapping, "json")


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=repr)
def test_json_refuses_nan_and_infinity_with_a_serialization_error(number: float) -> None:
    with pytest.raises(SerializationError, match=r"value\['x'\]\[0\]"):
        dumps({"x": [number]}, "json")


@override_settings(FIREFLY_SERIALIZER="pickle")
def test_pickle_round_trips_what_json_cannot_carry() -> None:
    value = {frozenset({1, 2}): fractions.Fraction(1, 3), "set": {3, 4}, "nan": math.inf}

    text = dumps(value, "pickle")

    assert loads(text, "pickle") == value
    assert pickle.loads(base64.b64decode(text.rsplit(":", 1)[0])) == value


def test_pickle_text_is_base64_ascii_then_its_signature() -> None:
    text = dumps([1, 2], "pickle")

    pickled, signature = text.split(":")
    assert text.isascii()
    assert base64.b64encode(base64.b64decode(pickled)).decode() == pickled
    assert signature == Signer(salt="firefly_tasks.serialization.pickle").signature(pickled)


def test_pickle_refuses_unpicklable_values_with_a_serialization_error() -> None:
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
def test_undecodable_text_raises_serialization_error(text: str, serializer: str) -> None:
    with pytest.raises(SerializationError):
        loads(text, serializer)


def test_unknown_serializer_is_refused_both_ways() -> None:
    with pytest.raises(SerializationError, match="Unknown serializer 'yaml'"):
        dumps(1, "yaml")
    with pytest.raises(SerializationError, match="Unknown serializer 'yaml'"):
        loads("1", "yaml")


def test_call_preview_renders_args_and_kwargs_like_a_call() -> None:
    assert call_preview((1, "a"), {"key": [2]}, 200) == "1, 'a', key=[2]"


def test_previews_are_cut_to_length_with_an_ellipsis() -> None:
    preview = value_preview("x" * 500, 40)

    assert len(preview) == 40
    assert preview.endswith("…")
    assert truncate("short", 40) == "short"


# Limits: whatever dumps() accepts, loads() decodes; the rest is a SerializationError --------


def nest(depth: int, kind: str = "list", leaf: object = 0) -> object:
    """``leaf`` inside ``depth`` containers of one kind."""
    value = leaf
    for _ in range(depth):
        if kind == "list":
            value = [value]
        elif kind == "tuple":
            value = (value,)
        elif kind == "dict":
            value = {"k": value}
        else:  # a dict whose keys include the tag: the deepest JSON form
            value = {TAG: value}
    return value


KINDS = ["list", "tuple", "dict", "tagged dict"]


@pytest.mark.parametrize("kind", KINDS)
def test_values_nested_max_depth_deep_round_trip(kind: str) -> None:
    value = nest(MAX_DEPTH, kind, leaf=datetime.date(2024, 1, 1))

    assert json_round_trip(value) == value


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_values_nested_deeper_than_max_depth_are_refused(kind: str, depth: int) -> None:
    with pytest.raises(SerializationError, match=rf"more than {MAX_DEPTH} deep"):
        dumps(nest(depth, kind), "json", what="arguments")


def test_too_deep_error_says_where() -> None:
    with pytest.raises(SerializationError, match=r"^value\['a'\]\[0\]\[0\]"):
        dumps({"a": [nest(MAX_DEPTH - 1)]}, "json")


@pytest.mark.parametrize(
    "number",
    [10**MAX_INT_DIGITS - 1, -(10**MAX_INT_DIGITS - 1), 2**2000],
    ids=["max", "min", "2**2000"],
)
def test_ints_up_to_max_int_digits_round_trip_even_where_the_int_digit_limit_is_lowest(
    number: int,
) -> None:
    text = dumps(number, "json")
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)  # the lowest limit a consumer can run with
    try:
        assert loads(text, "json") == number
    finally:
        sys.set_int_max_str_digits(previous)


@pytest.mark.parametrize("number", [10**MAX_INT_DIGITS, -(10**5000)], ids=["10**640", "-10**5000"])
def test_larger_ints_are_refused_with_the_reason(number: int) -> None:
    with pytest.raises(SerializationError, match=r"arguments\[0\] is an int of more than 640"):
        dumps([number], "json", what="arguments")


@pytest.mark.parametrize(
    "text", ["\ud800", "\udfff", "a\ud83d", "\x00", "\u2028", "😀", "\ufeff"], ids=ascii
)
def test_lone_surrogates_and_control_characters_round_trip_as_ascii_text(text: str) -> None:
    stored = dumps({text: [text]}, "json")

    assert stored.isascii()
    assert json_round_trip({text: [text]}) == {text: [text]}


def test_payload_above_the_limit_is_refused_with_the_setting() -> None:
    big = "x" * (1024 * 1024)

    with pytest.raises(SerializationError, match=r"arguments would be stored as 1048\d\d\d bytes"):
        dumps(([big], {}), "json", what="arguments")
    with pytest.raises(SerializationError, match="FIREFLY_MAX_PAYLOAD_BYTES"):
        dumps(big, "json")


def test_payload_limit_follows_the_setting_for_both_serializers(settings: Settings) -> None:
    settings.FIREFLY_MAX_PAYLOAD_BYTES = 2048
    settings.FIREFLY_SERIALIZER = "pickle"

    assert len(dumps("x" * 2046, "json")) == 2048
    with pytest.raises(SerializationError, match=r"2049 bytes, more than .* \(2048\)"):
        dumps("x" * 2047, "json")
    with pytest.raises(SerializationError, match="FIREFLY_MAX_PAYLOAD_BYTES"):
        dumps(b"x" * 2048, "pickle")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 10_000 + "]" * 10_000,
        '{"a":' * 10_000 + "1" + "}" * 10_000,
        "[" * 1_000_000,
        json.dumps({TAG: "tuple", "v": 5}),
        json.dumps({TAG: "dict", "v": [[1]]}),
        json.dumps({TAG: "dict", "v": [[[], 1]]}),
        json.dumps({TAG: "timedelta", "v": "soon"}),
        json.dumps({TAG: "date", "v": 5}),
        json.dumps({TAG: ["unhashable"], "v": 1}),
        json.dumps({TAG: "uuid", "v": "x"}),
        json.dumps({TAG: "decimal", "v": "1.2.3"}),
        "1" * 5000,
        '"\\ud800',
        "\x00",
    ],
    ids=lambda text: ascii(text[:30]),
)
def test_garbage_raises_serialization_error_and_nothing_else(text: str) -> None:
    with pytest.raises(SerializationError):
        loads(text, "json")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    value = ["[" * 1000, {"{" * 1000: ']\\"[' * 1000}]

    assert json_round_trip(value) == value


SMALL_STACK_DECODE = """
import sys, threading
from django.conf import settings
settings.configure(SECRET_KEY="small-stack")
from firefly_tasks.exceptions import SerializationError
from firefly_tasks.serialization import TAG, dumps, loads

def nest(depth, kind):
    value = 0
    for _ in range(depth):
        value = {"list": [value], "tuple": (value,), "dict": {"k": value}}.get(kind, {TAG: value})
    return value

threading.stack_size(128 * 1024)  # musl's default thread stack (Alpine images)
results = []

def decode():
    for kind in ("list", "tuple", "dict", "tagged dict"):
        value = nest(98, kind)
        results.append(loads(dumps(([value], {}), "json"), "json") == ([value], {}))
    for garbage in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000):
        try:
            loads(garbage, "json")
        except SerializationError:
            results.append(True)

thread = threading.Thread(target=decode)
thread.start()
thread.join()
sys.exit(0 if results == [True] * 6 else 1)
"""


def test_decoding_on_a_small_thread_stack_never_crashes_the_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SMALL_STACK_DECODE],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr  # -11 is a segfault: a stack overflow


# Properties: dumps() refuses with SerializationError, or loads() gives the value back -------

FAST = hypothesis.settings(max_examples=150, deadline=None, database=None)


def same(a: object, b: object) -> bool:
    """Equal with the same types all the way down: stricter than ``==`` (``1 == True``,
    ``(1,) != [1]``), and a Decimal NaN is the same as itself."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)  # of a's type
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        assert isinstance(b, dict)  # of a's type
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    if isinstance(a, decimal.Decimal | datetime.datetime | datetime.time):
        return str(a) == str(b)  # the same digits and exponent; the same instant and offset
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


texts = st.text(st.characters(exclude_categories=()), max_size=8)  # surrogates and NULs too
keys = texts | st.sampled_from([TAG, "v", "tuple", "dict"])
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([639, 640, 5000]).map(lambda digits: 10**digits)  # big: 640 digits on
    | st.sampled_from([-1, 1, 9]).map(lambda n: n * 10**639)
    | st.floats()
    | texts
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.dates()
    | st.times(timezones=st.none() | st.timezones())
    | st.timedeltas()
    | st.decimals()
    | st.uuids()
    | st.sampled_from([TAG, "tuple", "datetime"])
)
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def deep_values(draw: st.DrawFn) -> object:
    """One value inside up to 1.5 * MAX_DEPTH containers of mixed kinds."""
    value = draw(values)
    for kind in draw(st.lists(st.sampled_from(KINDS), max_size=MAX_DEPTH * 3 // 2)):
        value = nest(1, kind, leaf=value)
    return value


def assert_round_trips(value: object, what: str = "value") -> None:
    try:
        text = dumps(value, "json", what=what)
    except SerializationError:
        return
    assert text.isascii()
    assert same(loads(text, "json"), value)


@FAST
@hypothesis.given(values)
def test_any_value_round_trips_or_is_refused(value: object) -> None:
    assert_round_trips(value)


@FAST
@hypothesis.given(deep_values())
def test_any_deep_value_round_trips_or_is_refused(value: object) -> None:
    assert_round_trips(value)


@FAST
@hypothesis.given(st.lists(values, max_size=3), st.dictionaries(st.text(max_size=5), values))
def test_any_call_round_trips_or_is_refused(args: list[object], kwargs: dict[str, object]) -> None:
    assert_round_trips((args, kwargs), what="arguments")


def stored_or_refused(encode: Callable[[], str]) -> str:
    try:
        return encode()
    except SerializationError as exc:
        return f"refused: {exc}"


@FAST
@hypothesis.given(st.lists(values, max_size=3), st.dictionaries(st.text(max_size=5), values))
def test_a_call_is_stored_as_the_pair_of_its_args_and_kwargs(
    args: list[object], kwargs: dict[str, object]
) -> None:
    """``dumps_call()`` (a row's arguments) skips the walk of the pair, not its result."""
    assert stored_or_refused(lambda: dumps_call(tuple(args), kwargs, "json")) == (
        stored_or_refused(lambda: dumps((args, kwargs), "json", what="arguments"))
    )


@pytest.mark.parametrize("empty", [[], {}, ()], ids=repr)
def test_an_empty_container_one_level_too_deep_is_refused(empty: object) -> None:
    with pytest.raises(SerializationError, match=rf"more than {MAX_DEPTH} deep"):
        dumps(nest(MAX_DEPTH, "list", leaf=empty), "json")
    with pytest.raises(SerializationError, match=rf"more than {MAX_DEPTH} deep"):
        dumps_call((nest(MAX_DEPTH - 2, "list", leaf=empty),), {}, "json")
    assert dumps(nest(MAX_DEPTH - 1, "list", leaf=empty), "json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=15,
)


@FAST
@hypothesis.given(json_values | texts)
def test_the_encoder_built_once_writes_what_json_dumps_writes(value: object) -> None:
    """The same text, or both refuse (infinity: ``_to_json_safe()`` lets none through)."""

    def encoded(encode: Callable[[], str]) -> str:
        try:
            return encode()
        except ValueError:
            return "refused"

    assert encoded(lambda: serialization._encode(value)) == encoded(
        lambda: json.dumps(value, separators=(",", ":"), allow_nan=False)
    )


@FAST
@hypothesis.given(json_values | texts)
def test_any_stored_text_decodes_or_raises_serialization_error(stored: object) -> None:
    text = stored if isinstance(stored, str) else json.dumps(stored)
    with contextlib.suppress(SerializationError):
        loads(text, "json")


# Through the database: what schedule() accepts is stored, read back and run -----------------

BOUNDARY_VALUES = {
    "lone surrogates": ["\ud800", "a\udfff", "\ud83d"],
    "NUL and controls": "\x00\x01\x1f\u2028\ufeff",
    "emoji": "😀",
    "largest int": -(10**MAX_INT_DIGITS - 1),
    "deepest argument": nest(MAX_DEPTH - 2, "tuple", leaf=decimal.Decimal("1.50")),
    "tag key": {TAG: {TAG: "datetime", "v": "x"}},
}


def largest_string_argument(limit: int) -> str:
    overhead = len(
        dumps(
            (
                [
                    "",
                ],
                {},
            ),
            "json",
        )
    )
    return "x" * (limit - overhead)


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(BOUNDARY_VALUES))
def test_boundary_values_are_stored_and_read_back(name: str) -> None:
    value = BOUNDARY_VALUES[name]

    row = tasks.echo.schedule(value)

    assert same(TaskModel.objects.get(pk=row.pk).params["args"][0], value)


@pytest.mark.django_db
def test_arguments_as_large_as_the_limit_are_stored_on_every_database() -> None:
    value = largest_string_argument(1024 * 1024)

    row = tasks.echo.schedule(value)

    assert len(TaskModel.objects.get(pk=row.pk).params_data) == 1024 * 1024
    with pytest.raises(SerializationError, match="FIREFLY_MAX_PAYLOAD_BYTES"):
        tasks.echo.schedule(value + "x")
    with pytest.raises(SerializationError, match="FIREFLY_MAX_PAYLOAD_BYTES"):
        tasks.echo.schedule("x" * 20 * 1024 * 1024)  # MariaDB's OperationalError 1153 before
    assert TaskModel.objects.count() == 1


@pytest.mark.django_db
def test_schedule_refuses_arguments_nested_too_deep_with_serialization_error() -> None:
    tasks.echo.schedule(nest(MAX_DEPTH - 2))

    for depth in (MAX_DEPTH - 1, 494, 495, 10_000):  # 495 raised RecursionError before
        with pytest.raises(SerializationError, match="deep"):
            tasks.echo.schedule(nest(depth))
    with pytest.raises(SerializationError, match="640 digits"):
        tasks.echo.schedule(10**5000)


@pytest.mark.django_db
def test_a_return_value_above_the_limit_fails_the_task(settings: Settings) -> None:
    row = tasks.echo.schedule("x" * 5000)
    settings.FIREFLY_MAX_PAYLOAD_BYTES = 4096

    run_pending_tasks()

    row.refresh_from_db()
    assert row.status == TaskStatus.FAILED
    assert row.error.startswith("SerializationError: the return value would be stored as 5002")
    assert row.returned_data is None


@pytest.mark.django_db
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(values)
def test_any_value_schedule_accepts_is_stored_run_and_returned(value: object) -> None:
    try:
        row = tasks.echo.schedule(value)
    except SerializationError:
        return

    assert same(TaskModel.objects.get(pk=row.pk).params["args"][0], value)
    assert run_pending_tasks() == 1
    done = TaskModel.objects.get(pk=row.pk)
    assert done.status == TaskStatus.COMPLETED, done.error
    assert same(done.returned, value)


@pytest.mark.slow
def test_a_consumer_runs_boundary_values_and_fails_what_it_cannot_decode(
    start_consumer: Callable[..., Consumer],
) -> None:
    rows = {name: tasks.echo.schedule(value) for name, value in BOUNDARY_VALUES.items()}
    too_deep = tasks.echo.schedule(1)
    TaskModel.objects.filter(pk=too_deep.pk).update(params_data="[" * 10_000 + "]" * 10_000)
    bad_tag = tasks.echo.schedule(1)
    TaskModel.objects.filter(pk=bad_tag.pk).update(params_data='{"__firefly__":"tuple","v":5}')
    big_result = tasks.echo.schedule("x" * 5000)
    behind = tasks.echo.schedule("behind")

    consumer = start_consumer("--burst", FIREFLY_MAX_PAYLOAD_BYTES=4096)

    assert consumer.wait() == 0, consumer.output()
    for name, row in rows.items():
        done = TaskModel.objects.get(pk=row.pk)
        assert done.status == TaskStatus.COMPLETED, (name, done.error)
        assert same(done.returned, BOUNDARY_VALUES[name]), name
    for row in (too_deep, bad_tag, big_result):
        failed = TaskModel.objects.get(pk=row.pk)
        assert failed.status == TaskStatus.FAILED
        assert failed.error.startswith("SerializationError:"), failed.error
    assert TaskModel.objects.get(pk=behind.pk).returned == "behind"


def test_loads_plain_reads_tagged_values_as_the_plain_json_they_wrap() -> None:
    stored = dumps(
        (datetime.datetime(2024, 5, 31, 10, tzinfo=datetime.UTC), {"k": decimal.Decimal("1.5")}),
        "json",
    )

    assert loads_plain(stored) == ["2024-05-31T10:00:00+00:00", {"k": "1.5"}]


def test_loads_plain_unwraps_a_dict_that_holds_the_tag_key_once() -> None:
    value = {TAG: "tuple", "v": 5}

    assert loads_plain(dumps(value, "json")) == value


def test_loads_plain_reads_unknown_tags_as_their_stored_value() -> None:
    assert loads_plain(f'[{{"{TAG}": "fraction", "v": "1/3"}}]') == ["1/3"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{oops", json.JSONDecodeError),
        (f'{{"{TAG}": "tuple", "v": 5}}', TypeError),
        ("[" * 10_000 + "]" * 10_000, RecursionError),
    ],
)
def test_loads_plain_raises_what_says_why_a_payload_cannot_be_shown(
    text: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        loads_plain(text)
