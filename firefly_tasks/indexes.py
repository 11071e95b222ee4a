"""The index that serves claiming, shaped for each database."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q


class ReadyTasksIndex(models.Index):
    """Serves ``status = 'created' AND queue = %s ORDER BY priority DESC, not_before, id``.

    Declared with ``status`` as its first column, which is what MariaDB gets (it has no
    partial indexes; EXPLAIN shows this composite needs no filesort). Databases with partial
    indexes (PostgreSQL, SQLite) get a smaller index over the ready rows only instead.
    """

    def _partial(self) -> models.Index:
        return models.Index(
            fields=[f for f in self.fields if f != "status"],
            name=self.name,
            condition=Q(status="created"),
        )

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.features.supports_partial_indexes:
            return self._partial().create_sql(model, schema_editor, using=using, **kwargs)
        return super().create_sql(model, schema_editor, using=using, **kwargs)
