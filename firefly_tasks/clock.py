"""The database's clock: liveness and rescue are judged by it, so hosts with skewed clocks
agree."""

from __future__ import annotations

import datetime
from typing import Any, cast

from django.db.models.functions import Now
from django.db.models.sql import Query

from firefly_tasks import database
from firefly_tasks.dialects import dialect


class DatabaseNow(Now):
    """The database's current time in UTC, whatever the session's time zone."""

    def as_sql(self, compiler: Any, connection: Any, *args: Any, **extra_context: Any) -> Any:
        sql = dialect(connection).utc_now_sql
        if sql is not None:
            return sql, ()
        return super().as_sql(compiler, connection, *args, **extra_context)


def database_time_ago(seconds: float) -> Any:
    """An expression for "``seconds`` ago" on the database's clock."""
    return DatabaseNow() - datetime.timedelta(seconds=seconds)


def database_now(using: str | None = None) -> datetime.datetime:
    """The database's current time, read with one query (aware, in UTC, under ``USE_TZ``)."""
    using = using or database.alias()
    query = Query(None)
    query.add_annotation(DatabaseNow(), "now")
    for (now,) in query.get_compiler(using).results_iter():
        return cast(datetime.datetime, now)
    raise AssertionError("SELECT of the time returned no row")
