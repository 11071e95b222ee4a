"""Rows to add to a rollup table, and the parts of the ``INSERT`` that adds them: what every
dialect's upsert of the rollups shares (the clause that adds to a row already there is the
dialect's own)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models


@dataclass
class RollupRows:
    """Each row holds the ``key`` columns, then the ``added`` ones, which are summed into the
    row already there with the same key. ``added`` names only the columns some row adds to:
    the table's other columns, ``zeros``, start at 0 and stay as they are."""

    model: type[models.Model]
    key: tuple[str, ...]
    added: tuple[str, ...]
    zeros: tuple[str, ...]
    rows: list[list[Any]]

    def shape(self) -> tuple[Any, ...]:
        """What the statement's text depends on."""
        return (self.model, self.added, len(self.rows))

    def params(self, adapt: Callable[[Any], Any]) -> list[Any]:
        params: list[Any] = []
        for row in self.rows:
            params += [adapt(v) if isinstance(v, datetime.datetime) else v for v in row]
        return params

    def into(self, qn: Callable[[str], str]) -> str:
        """The table and every column of the ``INSERT``, quoted by ``qn``."""
        columns = (*self.key, *self.added, *self.zeros)
        return f"{qn(self.model._meta.db_table)} ({', '.join(map(qn, columns))})"

    def values(self) -> str:
        """The rows as ``VALUES`` rows: placeholders, then 0 for the zeros."""
        row = ", ".join(["%s"] * (len(self.key) + len(self.added)) + ["0"] * len(self.zeros))
        return ", ".join([f"({row})"] * len(self.rows))
