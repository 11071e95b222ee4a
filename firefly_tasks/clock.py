"""The database's clock: liveness and rescue are judged by it, so hosts with skewed clocks
agree."""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models.functions import Now

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
