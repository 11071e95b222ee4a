"""What the admin shows of a task's arguments and result, with hidden arguments masked.

Stored payloads are never unpickled in the web process. JSON rows are read with
:func:`firefly_tasks.serialization.loads_plain` (data only: no code runs, no object is built);
pickle rows show the short previews the engine wrote at scheduling and completion time.

Rows can hold anything: what ``schedule()`` accepted (nested almost as deep as the stack
allows, lone surrogates in strings), or garbage written straight to the table. So
:func:`params_text` and :func:`result_text` never raise: a payload they cannot show reads as
``undecodable: <reason>``, followed by the stored preview when there is one, and their text is
always encodable as UTF-8.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from firefly_admin.conf import settings
from firefly_tasks.conf import settings as engine_settings
from firefly_tasks.models import TaskModel
from firefly_tasks.registry import registry
from firefly_tasks.serialization import loads_plain

logger = logging.getLogger("firefly_admin")

MASK = "********"
MAX_DISPLAY_LENGTH = 20_000
# Longer payloads are not decoded for display: the stored preview stands in for them.
MAX_DECODE_LENGTH = 1_000_000
UNDECODABLE = gettext_noop("undecodable")  # shown in the active language


class Unshowable(ValueError):
    """A stored payload the admin does not decode, and why."""


def mask_value(value: Any, hidden: Iterable[str] | None = None) -> Any:
    """``value`` with the values of dict keys named in ``hidden`` replaced, at any depth."""
    names = _normalise(settings.HIDDEN_ARGS if hidden is None else hidden)
    return _mask(value, names) if names else value


def _mask(value: Any, names: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {
            key: MASK if str(key).lower() in names else _mask(item, names)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask(item, names) for item in value]
    return value


def mask_text(text: str, hidden: Iterable[str] | None = None) -> str:
    """Mask ``name=value`` and ``'name': value`` pairs in a repr-style preview."""
    names = _normalise(settings.HIDDEN_ARGS if hidden is None else hidden)
    if not names or not text:
        return text
    return _text_pattern(names).sub(lambda match: match.group("key") + repr(MASK), text)


def _normalise(names: Iterable[str]) -> frozenset[str]:
    return frozenset(name.lower() for name in names if name)


@lru_cache(maxsize=16)
def _text_pattern(names: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(name) for name in sorted(names))
    # A quoted value may be cut short by the preview's truncation, hence the optional quote.
    value = r"""'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^,)}\]]*"""
    key = rf"""(?:\b(?:{alternatives})\s*=\s*|(?P<q>['"])(?:{alternatives})(?P=q)\s*:\s*)"""
    return re.compile(rf"(?P<key>{key})(?:{value})", re.IGNORECASE)


def positional_names(func_name: str) -> list[str]:
    """Names of the registered task's positional parameters, to mask arguments passed by
    position; empty when the task is not registered (any more)."""
    task = registry.get(engine_settings.TASK_ALIASES.get(func_name, func_name))
    if task is None:
        return []
    try:
        parameters = inspect.signature(task.func).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [parameter.name for parameter in parameters if parameter.kind in kinds]


def params_text(task: TaskModel) -> str:
    """The call's arguments, pretty-printed for JSON rows, the stored preview otherwise."""
    try:
        return printable(_params_text(task))
    except Exception as exc:  # anything a row can hold must still render
        return _undecodable(task, "params", exc, lambda: params_preview_text(task))


def _params_text(task: TaskModel) -> str:
    if task.serializer == "pickle" or not task.params_data:
        return params_preview_text(task)
    call = _decode(task, task.params_data)  # stored as (args, kwargs)
    if not (isinstance(call, list) and len(call) == 2 and isinstance(call[0], list)):
        raise Unshowable(_("not an (args, kwargs) pair"))
    args, kwargs = call
    if not isinstance(kwargs, dict):
        raise Unshowable(_("not an (args, kwargs) pair"))
    hidden = _normalise(settings.HIDDEN_ARGS)
    names = positional_names(task.func_name) if hidden else []
    shown = [
        MASK if index < len(names) and names[index].lower() in hidden else arg
        for index, arg in enumerate(args)
    ]
    return _pretty({"args": mask_value(shown), "kwargs": mask_value(kwargs)})


def params_preview_text(task: TaskModel, names: list[str] | None = None) -> str:
    """The stored one-line preview of the arguments, masked by keyword and by position."""
    hidden = _normalise(settings.HIDDEN_ARGS)
    text = mask_text(task.params_preview)
    if not hidden or not text:
        return text
    if names is None:
        names = positional_names(task.func_name)
    parts = _split_top_level(text)
    for index, name in enumerate(names[: len(parts)]):
        part = parts[index]
        if name.lower() in hidden and not _is_keyword(part):
            parts[index] = part[: len(part) - len(part.lstrip())] + repr(MASK)
    return ",".join(parts)


def _is_keyword(part: str) -> bool:
    return re.match(r"\s*[A-Za-z_]\w*\s*=", part) is not None


def _split_top_level(text: str) -> list[str]:
    """Split ``1, 'a, b', [2, 3]`` at the commas outside quotes and brackets."""
    parts: list[str] = []
    depth, quote, start, index = 0, "", 0, 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts


def result_text(task: TaskModel) -> str:
    """What the task returned, pretty-printed for JSON rows, the stored preview otherwise."""
    if task.returned_data is None:
        return ""
    try:
        return printable(_result_text(task))
    except Exception as exc:  # anything a row can hold must still render
        return _undecodable(task, "result", exc, lambda: mask_text(task.returned_preview))


def _result_text(task: TaskModel) -> str:
    if task.serializer == "pickle":
        return mask_text(task.returned_preview)
    return _pretty(mask_value(_decode(task, task.returned_data or "")))


def _decode(task: TaskModel, text: str) -> Any:
    """The JSON value of a stored payload, its serializer's tags unwrapped."""
    if task.serializer != "json":
        raise Unshowable(_("unknown serializer %(name)r") % {"name": task.serializer})
    if len(text) > MAX_DECODE_LENGTH:
        too_long = _("%(count)s characters, too long to decode here")
        raise Unshowable(too_long % {"count": number_format(len(text), force_grouping=True)})
    return loads_plain(text)


def _pretty(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > MAX_DISPLAY_LENGTH:
        return text[:MAX_DISPLAY_LENGTH] + "\n… " + _("(truncated)")
    return text


def _undecodable(task: TaskModel, what: str, exc: Exception, preview: Callable[[], str]) -> str:
    """The placeholder for a payload that cannot be shown, with the stored preview if any."""
    if isinstance(exc, RecursionError):
        reason = _("nested too deeply to show")
    elif isinstance(exc, Unshowable):
        reason = str(exc)
    else:
        reason = f"{type(exc).__name__}: {exc}"
    logger.warning("undecodable task=%s field=%s error=%s", task.pk, what, type(exc).__name__)
    text = f"{_(UNDECODABLE)}: {reason}"[:500]
    try:
        shown = preview()
    except Exception:
        shown = ""
    if shown:
        stored = _("Preview stored by the engine:")
        text += f"\n\n{stored}\n{shown[:MAX_DISPLAY_LENGTH]}"
    return printable(text)


def printable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates) written as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
