"""Calls of a task turned into stored rows: how ``@task`` tasks and the DEP 14 backend build,
check and insert them, with every option resolved once."""

from __future__ import annotations

import contextlib
import datetime
import functools
from collections.abc import Collection
from typing import Any

from django.db import transaction

from firefly_tasks import database, serialization, signals, uniqueness
from firefly_tasks.call_columns import column_values
from firefly_tasks.conf import settings
from firefly_tasks.dialects.instances import builder
from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.execution import run_immediately
from firefly_tasks.models import TaskModel, TaskTag
from firefly_tasks.options import TaskOptions
from firefly_tasks.registry import registry
from firefly_tasks.states import TaskStatus

Call = tuple[tuple[Any, ...], dict[str, Any]]


@functools.cache
def _unsaved_row() -> dict[str, Any]:
    """The values of a new ``TaskModel`` row by attribute name, in field order: each field's
    default where it is a constant. ``build_rows()`` sets the rest (``created``,
    ``not_before``: their defaults are calls)."""
    return {
        field.attname: None
        if field.has_default() and callable(field.default)
        else field.get_default()
        for field in TaskModel._meta.concrete_fields
    }


def build_rows(
    name: str,
    options: TaskOptions,
    calls: list[Call],
    *,
    now: datetime.datetime,
    eta: object = None,
    serializer: str | None = None,
    backend: str = "",
) -> list[TaskModel]:
    """Unsaved rows for ``calls`` of the task ``name``. Options are resolved and checked
    once, on the first call (``eta`` overrides ``options.eta``); each call's arguments are
    serialized and checked. Raises before anything is stored."""
    if not calls:
        return []
    length = settings.PREVIEW_LENGTH
    values = dict(_unsaved_row())
    values.update(
        column_values(name, options, now=now, eta=eta, serializer=serializer, backend=backend)
    )
    serializer = values["serializer"]
    for hook in (options.on_success, options.on_failure):
        if hook is not None and hook not in registry:
            raise InvalidTaskError(f"The hook {hook!r} is not a registered task.")
    flow = any((options.unique, options.unique_key, options.concurrency_limit, options.rate_limit))
    rows = []
    build = builder(TaskModel, values)
    dumps, preview = serialization.dumps_call, serialization.call_preview
    for args, kwargs in calls:
        row = build(
            params_data=dumps(args, kwargs, serializer),
            params_preview=preview(args, kwargs, length),
        )
        if flow:
            _flow_control(row, name, options, (args, kwargs))
        if options.depends_on:
            row.waits_for = tuple((pk, i) for i, pk in enumerate(options.depends_on))
        row.new_tags = options.tags
        rows.append(row)
    return rows


def _flow_control(row: TaskModel, name: str, options: TaskOptions, call: Call) -> None:
    """Set a built row's unique key, concurrency key and rate key from ``options``."""
    args, kwargs = call
    if options.unique or options.unique_key is not None:
        key = uniqueness.key_for(name, options, args, kwargs)
        uniqueness.hold(row, key, options.unique_for)
    if options.concurrency_limit is not None:
        key = _limit_key(name, "concurrency_key", options.concurrency_key, args, kwargs)
        row.concurrency_key, row.concurrency_limit = key, options.concurrency_limit
    if options.rate_limit is not None:
        key = _limit_key(name, "rate_key", options.rate_key, args, kwargs)
        row.rate_key, row.rate_limit = key, options.rate_limit


def _limit_key(
    name: str, option: str, key: object, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str:
    """A limited call's key (``option``): given, a function's, or the task's name."""
    if callable(key):
        return uniqueness.call_key_function(name, option, key, args, kwargs)
    return name if key is None else str(key)


def store(
    rows: list[TaskModel], on_duplicate: str = "return", fresh: Collection[int] = ()
) -> list[TaskModel]:
    """Insert built rows (one statement, unless some hold a unique key or wait for other
    tasks) and send ``task_scheduled`` for each row stored. A call whose unique key an
    unfinished task holds gets that task's row, ``deduplicated`` (or ``DuplicateTaskError``:
    ``on_duplicate``). ``fresh``: tasks a row waits for that this transaction inserted."""
    if not rows:
        return rows
    tagged = any(row.new_tags for row in rows)
    waiting = any(row.waits_for for row in rows)
    with database.atomic() if tagged or waiting else contextlib.nullcontext():
        if waiting:
            rows = [_insert_waiting(row, fresh) for row in rows]
        elif any(row.unique_hold is not None for row in rows):
            rows = uniqueness.store(rows, on_duplicate)
        else:
            rows = TaskModel.objects.insert_calls(rows)
        if tagged:
            TaskTag.objects.bulk_create(
                TaskTag(task_id=row.pk, tag=tag)
                for row in rows
                if not row.deduplicated
                for tag in row.new_tags
            )
    if database.queue_connection().in_atomic_block:
        _until_commit(rows)
    for row in rows:
        if not row.deduplicated:
            signals.send(signals.task_scheduled, task=row)
    return rows


def _until_commit(rows: list[TaskModel]) -> None:
    """Mark rows stored in a transaction ``uncommitted`` until it commits: no consumer sees
    them before, so waiting for their result then would wait in vain."""
    for row in rows:
        row.uncommitted = True

    def committed() -> None:
        for row in rows:
            row.uncommitted = False

    transaction.on_commit(committed, using=database.alias())


def _insert_waiting(row: TaskModel, fresh: Collection[int]) -> TaskModel:
    if not row.waits_for:
        (row,) = TaskModel.objects.insert_calls([row])
        return row
    inserted: TaskModel = TaskModel.objects.insert_waiting(row, row.waits_for, fresh=fresh)
    return inserted


def run_if_immediate(rows: list[TaskModel]) -> None:
    """Under ``FIREFLY_RUN_IMMEDIATELY``, run stored rows in this process now."""
    if settings.RUN_IMMEDIATELY:
        for row in rows:
            if row.deduplicated:
                continue
            if row.waits_for or row.feed:  # a workflow's: ready once those before finished
                row.refresh_from_db(fields=["status"])
                if row.status != TaskStatus.CREATED:
                    continue
            run_immediately(row)
