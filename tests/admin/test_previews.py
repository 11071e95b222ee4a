"""Arguments and results as the admin shows them: decoded safely, hidden values masked."""

from __future__ import annotations

import json

import pytest
from pytest_django import Settings

from firefly_admin.previews import (
    MASK,
    UNDECODABLE,
    mask_text,
    mask_value,
    params_preview_text,
    params_text,
    result_text,
)
from firefly_tasks import serialization
from firefly_tasks.models import TaskModel
from tests.admin import tasks as admin_tasks

HIDDEN = ["password", "token"]


@pytest.fixture(autouse=True)
def hidden_args(settings: Settings) -> None:
    settings.FIREFLY_ADMIN_HIDDEN_ARGS = HIDDEN


def test_mask_value_masks_hidden_keys_at_any_depth_whatever_their_case() -> None:
    value = {"user": "ada", "Password": "x", "nested": [{"token": "y", "keep": 1}]}
    assert mask_value(value) == {
        "user": "ada",
        "Password": MASK,
        "nested": [{"token": MASK, "keep": 1}],
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'ada', password='hunter2'", f"'ada', password='{MASK}'"),
        ("token=123, n=2", f"token='{MASK}', n=2"),
        ("{'password': 'x', 'a': 1}", f"{{'password': '{MASK}', 'a': 1}}"),
        ('{"token": "abc"}', f"{{\"token\": '{MASK}'}}"),
        ("password='cut short…", f"password='{MASK}'"),
        ("passwords='not hidden'", "passwords='not hidden'"),
    ],
)
def test_mask_text_masks_keyword_and_dict_forms_in_previews(text: str, expected: str) -> None:
    assert mask_text(text) == expected


@pytest.mark.django_db
def test_params_text_masks_arguments_passed_by_keyword_or_by_position() -> None:
    by_position = admin_tasks.sign_in.schedule("ada", "hunter2", token="t0k3n")

    shown = json.loads(params_text(by_position))

    assert shown == {"args": ["ada", MASK], "kwargs": {"token": MASK}}


@pytest.mark.django_db
def test_the_stored_preview_is_masked_by_position_too() -> None:
    task = admin_tasks.sign_in.schedule("ada", "hunter2, with comma", token="t")

    assert params_preview_text(task) == f"'ada', '{MASK}', token='{MASK}'"


@pytest.mark.django_db
def test_unregistered_tasks_still_mask_keywords() -> None:
    task = TaskModel.objects.create(
        func_name="gone.module.task",
        queue="default",
        params_data='[["a"],{"password":"x"}]',
        params_preview="'a', password='x'",
    )
    assert json.loads(params_text(task)) == {"args": ["a"], "kwargs": {"password": MASK}}


def test_pickle_rows_use_the_previews_only() -> None:
    task = TaskModel(
        func_name="x.y",
        serializer="pickle",
        params_data="not base64 at all",
        params_preview="1, token='abc'",
        returned_data="also garbage",
        returned_preview="{'token': 'abc'}",
    )
    assert params_text(task) == f"1, token='{MASK}'"
    assert result_text(task) == f"{{'token': '{MASK}'}}"


def test_unreadable_json_says_why_and_falls_back_to_the_preview() -> None:
    task = TaskModel(func_name="x.y", serializer="json", params_data="{oops", params_preview="1, 2")

    text = params_text(task)

    assert text.startswith(f"{UNDECODABLE}: JSONDecodeError: Expecting property name")
    assert text.endswith("\n1, 2")


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


GARBAGE = {
    "nested 10,000 deep": ("[" * 10_000 + "]" * 10_000, "nested too deeply to show"),
    "a tuple tag over a number": ('{"__firefly__": "tuple", "v": 5}', "TypeError"),
    "a dict tag over pairs that are not": ('{"__firefly__": "dict", "v": [1]}', "TypeError"),
    "invalid JSON": ("{oops", "JSONDecodeError"),
    "too long to decode": ("[" + "1," * 600_000 + "1]", "too long to decode here"),
}


@pytest.mark.parametrize(("stored", "reason"), GARBAGE.values(), ids=GARBAGE)
def test_garbage_payloads_read_as_undecodable_with_the_reason(stored: str, reason: str) -> None:
    task = TaskModel(func_name="x.y", params_data=stored, returned_data=stored)

    for text in (params_text(task), result_text(task)):
        assert text.startswith(f"{UNDECODABLE}: ")
        assert reason in text.splitlines()[0]


@pytest.mark.parametrize("stored", ['{"a": 1}', "[[], {}, 1]", "[[], []]", "[{}, {}]", "7"])
def test_arguments_that_are_not_an_args_kwargs_pair_read_as_undecodable(stored: str) -> None:
    task = TaskModel(func_name="x.y", params_data=stored)

    assert params_text(task) == f"{UNDECODABLE}: not an (args, kwargs) pair"


def test_an_unknown_serializer_reads_as_undecodable_and_shows_the_masked_preview() -> None:
    task = TaskModel(
        func_name="x.y",
        serializer="yaml",
        params_data="a: 1",
        params_preview="token='abc'",
        returned_data="b: 2",
        returned_preview="{'password': 'x'}",
    )

    assert params_text(task) == (
        f"{UNDECODABLE}: unknown serializer 'yaml'\n\nPreview stored by the engine:\ntoken='{MASK}'"
    )
    assert result_text(task).endswith(f"{{'password': '{MASK}'}}")


def test_lone_surrogates_are_shown_as_escapes_that_utf8_can_encode() -> None:
    task = TaskModel(func_name="x.y", params_data='[["\\ud800"], {}]', returned_data='"\\udfff"')

    for text in (params_text(task), result_text(task)):
        text.encode("utf-8")  # what the response does with it
    assert "\\ud800" in params_text(task)
    assert result_text(task) == '"\\udfff"'


@pytest.mark.parametrize("depth", [400, 490, 900])
def test_deep_values_that_json_can_parse_never_raise(depth: int) -> None:
    stored = json.dumps([[nested(depth)], {}])
    task = TaskModel(func_name="x.y", params_data=stored, returned_data=json.dumps(nested(depth)))

    for text in (params_text(task), result_text(task)):
        assert text.startswith((f"{UNDECODABLE}: nested too deeply", "{", "["))


def test_a_result_that_holds_the_tag_key_itself_is_unwrapped_once() -> None:
    value = {"__firefly__": "tuple", "v": 5}
    task = TaskModel(func_name="x.y", returned_data=serialization.dumps(value, "json"))

    assert json.loads(result_text(task)) == value


def test_results_are_masked_and_pretty_printed() -> None:
    task = TaskModel(func_name="x.y", returned_data='{"token": "abc", "n": [1, 2]}')
    assert json.loads(result_text(task)) == {"token": MASK, "n": [1, 2]}
    assert "\n" in result_text(task)


def test_nothing_is_masked_without_hidden_args(settings: Settings) -> None:
    settings.FIREFLY_ADMIN_HIDDEN_ARGS = []
    assert mask_text("password='x'") == "password='x'"
    assert mask_value({"password": "x"}) == {"password": "x"}
