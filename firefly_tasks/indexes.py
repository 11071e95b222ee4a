"""Indexes of the task and attempt tables, shaped for each database.

The task table's are declared as plain indexes, which is what MariaDB gets (it has no partial
indexes, and Django would otherwise create none there). Databases with partial indexes
(PostgreSQL, SQLite) get a smaller index instead, over the rows the index is read for: each
row a claim or a completion rewrites then costs fewer index entries.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q

from firefly_tasks.states import ATTENTION_OUTCOMES


class _PartialWherePossible(models.Index):
    """Created as ``_partial()`` on databases with partial indexes, as declared elsewhere."""

    def _partial(self) -> models.Index:
        raise NotImplementedError

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.features.supports_partial_indexes:
            return self._partial().create_sql(model, schema_editor, using=using, **kwargs)
        return super().create_sql(model, schema_editor, using=using, **kwargs)


class ReadyTasksIndex(_PartialWherePossible):
    """Serves ``status = 'created' AND queue = %s ORDER BY priority DESC, not_before, id``.

    With partial indexes: over the ready rows only, without the ``status`` column. Without
    them: ``status`` first (EXPLAIN on MariaDB shows this composite needs no filesort).
    """

    def _partial(self) -> models.Index:
        return models.Index(
            fields=[f for f in self.fields if f != "status"],
            name=self.name,
            condition=Q(status="created"),
        )


class NotNullIndex(_PartialWherePossible):
    """An index over the rows whose fields are all set, such as ``completed``, ``failed`` or
    ``worker``: it serves filters on them (``completed >= ...``, ``worker = ...``), which
    never match NULL, and the rows that have no value yet (a task just scheduled, still
    waiting or running) add nothing to it."""

    def _partial(self) -> models.Index:
        condition = Q()
        for name in self.fields:
            condition &= Q(**{f"{name.lstrip('-')}__isnull": False})
        return models.Index(fields=self.fields, name=self.name, condition=condition)


class LimitKeyIndex(_PartialWherePossible):
    """An index for the tasks of one key (``concurrency_key``): with partial indexes, over
    the rows that have a key, with the state and run order after it. Without them (MariaDB),
    over the key alone: an index holding ``status`` would be rewritten by every claim and
    completion of every task, limited or not, while the key of a task without one never
    changes from NULL, so its entry never moves."""

    def _partial(self) -> models.Index:
        key = self.fields[0]
        return models.Index(
            fields=self.fields, name=self.name, condition=Q(**{f"{key}__isnull": False})
        )

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.features.supports_partial_indexes:
            return self._partial().create_sql(model, schema_editor, using=using, **kwargs)
        alone = models.Index(fields=self.fields[:1], name=self.name)
        return alone.create_sql(model, schema_editor, using=using, **kwargs)


class UniqueWhereSet(models.UniqueConstraint):
    """A unique constraint over the rows whose field is set (``unique_hold``): a partial
    unique index with PostgreSQL and SQLite, a plain unique index on MariaDB, where NULLs
    never collide either. Declared without the condition, which Django would refuse on
    MariaDB (models.W036) and which changes nothing a check of the constraint finds."""

    def __init__(self, *, field: str, name: str) -> None:
        super().__init__(fields=[field], name=name)

    def deconstruct(self) -> Any:
        path, _, _ = super().deconstruct()
        return path, (), {"field": self.fields[0], "name": self.name}

    def _plain(self, schema_editor: Any) -> models.UniqueConstraint:
        if schema_editor.connection.features.supports_partial_indexes:
            (field,) = self.fields
            condition = Q(**{f"{field}__isnull": False})
            return models.UniqueConstraint(fields=self.fields, name=self.name, condition=condition)
        return models.UniqueConstraint(fields=self.fields, name=self.name)

    def constraint_sql(self, model: Any, schema_editor: Any) -> Any:
        return self._plain(schema_editor).constraint_sql(model, schema_editor)

    def create_sql(self, model: Any, schema_editor: Any) -> Any:
        return self._plain(schema_editor).create_sql(model, schema_editor)

    def remove_sql(self, model: Any, schema_editor: Any) -> Any:
        return self._plain(schema_editor).remove_sql(model, schema_editor)


def attention_index() -> models.Index:
    """The attempts that need an operator's eye (``ATTENTION_OUTCOMES``), for the dashboard's
    "attempt outcome" filter: a partial index, so a completion's attempt adds no entry, and
    none on MariaDB (Django creates no conditional index there; the filter scans)."""
    return models.Index(
        fields=["outcome", "task"],
        name="firefly_attempt_attention",
        condition=Q(outcome__in=[outcome.value for outcome in ATTENTION_OUTCOMES]),
    )
