"""Unique tasks: a call with a unique key is stored only while no unfinished task holds the
key; otherwise ``schedule()`` returns the task that holds it (docs/tasks.md, "Unique tasks").

A task *holds* its key in ``TaskModel.unique_hold``, unique among the rows where it is set
(``firefly_task_unique_hold``): the database decides every race, never a read before the
insert. The key is held while the task is unfinished, and with ``unique_for`` until
``unique_until`` too; a finished task lets go of it lazily (``firefly_tasks.key_holds``).
"""

from __future__ import annotations

import copy
import datetime
import hashlib
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError

from firefly_tasks import database, serialization
from firefly_tasks.exceptions import DuplicateTaskError, InvalidTaskError
from firefly_tasks.models import TaskModel
from firefly_tasks.options import UNIQUE_KEY_MAX_LENGTH, TaskOptions, validate_unique_key
from firefly_tasks.transactions import atomic_retried

# How many times an insert is tried again when its key's holder went away meanwhile (it
# finished, or its transaction rolled back): each try that loses finds the new holder.
TRIES = 20
DIGEST_LENGTH = 40


def key_for(
    name: str, options: TaskOptions, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str | None:
    """The unique key of a call of the task ``name``, or ``None`` for a call without one."""
    key: object = options.unique_key
    if callable(key):
        return call_key_function(name, "unique_key", key, args, kwargs)
    if key is not None:
        return str(key)
    if options.unique:
        return derived_key(name, args, kwargs)
    return None


def call_key_function(
    name: str,
    option: str,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> str:
    """The key ``function`` (the ``option`` of the task ``name``) gives a call, checked."""
    try:
        key = function(*args, **kwargs)
    except Exception as exc:
        raise InvalidTaskError(
            f"The {option} function of {name} raised {type(exc).__name__}: {exc}; "
            "nothing was scheduled."
        ) from exc
    return validate_unique_key(key, what=f"the {option} function of {name}")


def derived_key(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``@task(unique=True)``'s key: the task's name and a digest of its arguments as JSON
    with sorted keys, so the same call gives the same key however its keywords were ordered."""
    try:
        text = serialization.canonical_json((list(args), kwargs), "the arguments")
    except InvalidTaskError as exc:
        raise InvalidTaskError(
            f"{name} is unique=True, whose key is derived from the arguments as JSON: {exc}. "
            "Give it a unique_key instead."
        ) from exc
    digest = hashlib.sha256(f"{name}\n{text}".encode()).hexdigest()[:DIGEST_LENGTH]
    room = UNIQUE_KEY_MAX_LENGTH - DIGEST_LENGTH - 1
    return f"{name[-room:]}:{digest}"


def hold(row: TaskModel, key: str | None, period: datetime.timedelta | None) -> None:
    """Set a built row's unique columns: it holds ``key`` once inserted."""
    row.unique_key = row.unique_hold = key
    row.unique_until = row.created + period if key is not None and period else None


def store(rows: list[TaskModel], on_duplicate: str) -> list[TaskModel]:
    """Insert built rows, some holding a unique key: in the call's order, a row whose key an
    unfinished task holds (or an earlier row of the same call) is replaced by that task's
    row, marked ``deduplicated``; with ``on_duplicate="raise"`` it raises instead and nothing
    is stored. One transaction: all the rows or none."""
    # MariaDB: inserts of one key, waiting on a holder that rolled back, can deadlock.
    return atomic_retried(database.alias(), lambda: _store(rows, on_duplicate), tries=TRIES)


def _store(rows: list[TaskModel], on_duplicate: str) -> list[TaskModel]:
    stored: list[TaskModel | None] = [None] * len(rows)
    first: dict[str, TaskModel] = {}
    plain = []
    for i, row in enumerate(rows):
        key = row.unique_hold
        if key is None:
            plain.append(i)
            continue
        found = first.get(key)
        if found is None:
            found = first[key] = _insert_or_find(row)
            result = found
        else:
            result = _duplicate(found)
        if result.deduplicated and on_duplicate == "raise":
            raise DuplicateTaskError(
                f"Task #{result.pk} ({result.func_name}, {result.status}) holds the unique "
                f"key {key!r}; nothing was scheduled.",
                result,
            )
        stored[i] = result
    if plain:
        inserted = TaskModel.objects.insert_calls([rows[i] for i in plain])
        for i, row in zip(plain, inserted, strict=True):
            stored[i] = row
    return [row for row in stored if row is not None]


def _insert_or_find(row: TaskModel) -> TaskModel:
    """``row`` inserted, or the row that holds its key, marked ``deduplicated``.

    The insert decides; the read before it only spares an insert that would fail (and on
    MariaDB, the shared lock a failed insert keeps on the key until the transaction ends)."""
    key = row.unique_hold or ""
    for tries in range(TRIES):
        # After a failed insert, the holder committed: find it, locking if it must.
        holder = TaskModel.objects.holder_of(key, lock=tries > 0)
        if holder is not None:
            return _duplicate(holder)
        try:
            with database.atomic():  # a savepoint: the error leaves the rest intact
                TaskModel.objects.insert_calls([row])
            return row
        except IntegrityError:
            row.pk = None
    raise IntegrityError(
        f"The unique key {key!r} changed hands {TRIES} times while this call tried to take "
        "it; nothing was scheduled."
    )


def _duplicate(row: TaskModel) -> TaskModel:
    marked = copy.copy(row)
    marked.deduplicated = True
    return marked
