"""The statements of periodic schedules' ticks: part of every dialect (``Dialect`` inherits
them). Portable SQL run without the ORM: a burst of due ticks costs a few statements, not two a
schedule, and not the ORM's compiling of each."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, models

# Parameters of one schedule in the batched UPDATE (see move_schedules).
PARAMS_A_SCHEDULE = 9


@dataclass(frozen=True)
class Move:
    """One tick's compare-and-set: schedule ``pk``, waiting for ``tick``, moves on to
    ``next_tick``, recording ``last_tick`` (when a task goes with it: else None) and
    ``problem``."""

    pk: int
    tick: datetime.datetime
    next_tick: datetime.datetime
    last_tick: datetime.datetime | None
    problem: str


class TickConflict(DatabaseError):
    """A schedule changed under a pass that held it: the pass is rolled back and retried."""


class TickStatements:
    connection: Any
    qn: Callable[[str], str]
    adapt: Callable[[datetime.datetime | None], Any]
    hot_cursor: Callable[[], Any]
    max_params: Callable[[], int | None]

    def move_schedules(self, model: type[models.Model], moves: Sequence[Move]) -> None:
        """Compare-and-set each of ``moves`` with one ``UPDATE`` a chunk, in the caller's
        transaction, which holds their rows locked (see ``firefly_tasks.ticks``). Raises
        :class:`TickConflict` if one no longer waits for its tick."""
        most = max(1, (self.max_params() or 65535) // PARAMS_A_SCHEDULE)
        for start in range(0, len(moves), most):
            chunk = list(moves[start : start + most])
            if self._move(model, chunk) != len(chunk):
                raise TickConflict("a schedule changed while its row was held")

    def _move(self, model: type[models.Model], chunk: list[Move]) -> int:
        qn = self.qn
        params: list[Any] = []

        def case(values: list[tuple[int, Any]], otherwise: str = "NULL") -> str:
            for pk, value in values:
                params.extend((pk, value))
            whens = " ".join(["WHEN %s THEN %s"] * len(values))
            return f"CASE {qn('id')} {whens} ELSE {otherwise} END"

        a = self.adapt
        next_tick = case([(m.pk, a(m.next_tick)) for m in chunk])
        problem = case([(m.pk, m.problem) for m in chunk])
        lasts = [(m.pk, a(m.last_tick)) for m in chunk if m.last_tick is not None]
        last = case(lasts, qn("last_tick")) if lasts else qn("last_tick")
        ids = [m.pk for m in chunk]
        params.extend(ids)
        in_ids = ", ".join(["%s"] * len(ids))
        waiting = case([(m.pk, a(m.tick)) for m in chunk])
        sql = (
            f"UPDATE {qn(model._meta.db_table)} SET {qn('next_tick')} = {next_tick}, "
            f"{qn('problem')} = {problem}, {qn('last_tick')} = {last} "
            f"WHERE {qn('id')} IN ({in_ids}) AND {qn('next_tick')} = {waiting} AND {qn('enabled')}"
        )
        with self.hot_cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)
