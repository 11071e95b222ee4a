"""Model instances from the rows a hot statement fetched (a claim's ``RETURNING``), built as
``Model.from_db()`` would build them but without ``Model.__init__``'s work a field: every
claimed task is built once, and the task table has some forty columns.

Only where nothing listens to the model's ``pre_init`` or ``post_init`` signals, which
``__init__`` would send; otherwise through ``from_db()`` itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init


def instances(
    model: type[models.Model], alias: str, names: list[str], rows: Sequence[Sequence[Any]]
) -> list[Any]:
    """``rows`` (a value for each of ``names``: every concrete field's ``attname``, in field
    order) as instances of ``model``, loaded from the database ``alias``."""
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return [model.from_db(alias, names, row) for row in rows]
    built = []
    new = model.__new__
    for row in rows:
        instance = new(model)
        state = ModelState()
        state.adding, state.db = False, alias
        values = instance.__dict__
        values.update(zip(names, row, strict=True))
        values["_state"] = state
        built.append(instance)
    return built


def builder(model: type[models.Model], template: dict[str, Any]) -> Callable[..., Any]:
    """A function building an unsaved instance of ``model`` whose values are ``template``'s
    (a value for every concrete field's ``attname``, in field order) but for the keyword
    arguments it is given, as ``model(**values)`` does: ``schedule_many()`` builds a row a
    call."""
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return lambda **changes: model(*{**template, **changes}.values())
    new = model.__new__

    def build(**changes: Any) -> Any:
        instance = new(model)
        instance.__dict__ = {**template, **changes, "_state": ModelState()}
        return instance

    return build


def saved(rows: list[Any], ids: Sequence[Any], alias: str) -> None:
    """Give just inserted ``rows`` their ``ids`` and mark them saved to the database
    ``alias``."""
    for row, pk in zip(rows, ids, strict=True):
        row.pk = pk
        state = row._state
        state.adding, state.db = False, alias
