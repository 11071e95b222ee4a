"""The statements of periodic schedules' ticks: part of every dialect (``Dialect`` inherits
them). Portable SQL, built once per connection and run without the ORM: a burst of due ticks
is a statement or two a schedule, and the ORM's compiling would cost more than running them."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from django.db import models


class TickStatements:
    connection: Any
    built: Callable[..., Any]
    qn: Callable[[str], str]
    adapt: Callable[[datetime.datetime | None], Any]
    hot_cursor: Callable[[], Any]

    def move_schedule(
        self,
        model: type[models.Model],
        pk: int,
        *,
        tick: datetime.datetime,
        next_tick: datetime.datetime,
        last_tick: datetime.datetime | None,
        problem: str,
    ) -> bool:
        """The compare-and-set of one tick: move the schedule ``pk`` on to ``next_tick`` if
        it still waits for ``tick`` and is enabled (recording ``last_tick``, when a task goes
        with it, and ``problem``). False if another process moved it first, or it was
        disabled meanwhile."""
        sql = self.built(("move schedule", model), lambda: self._move_sql(model))
        params = [self.adapt(next_tick), problem, last_tick is not None, self.adapt(last_tick)]
        params += [pk, self.adapt(tick)]
        with self.hot_cursor() as cursor:
            cursor.execute(sql, params)
            return bool(cursor.rowcount == 1)

    def _move_sql(self, model: type[models.Model]) -> str:
        qn = self.qn
        return (
            f"UPDATE {qn(model._meta.db_table)} SET {qn('next_tick')} = %s, "
            f"{qn('problem')} = %s, {qn('last_tick')} = CASE WHEN %s THEN %s "
            f"ELSE {qn('last_tick')} END "
            f"WHERE {qn('id')} = %s AND {qn('next_tick')} = %s AND {qn('enabled')}"
        )
