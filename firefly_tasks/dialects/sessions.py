"""Ending another connection's session: how a consumer fences a task thread that ran past its
timeout and would not stop (docs/timeouts.md). Part of every dialect (``Dialect`` inherits it);
PostgreSQL and MariaDB can, SQLite cannot (a connection there is a file handle)."""

from __future__ import annotations

from typing import Any


class Sessions:
    connection: Any

    def session_id(self) -> int | None:
        """This connection's server session, for :meth:`end_session` on another connection;
        ``None`` where sessions cannot be ended, or while the connection is closed."""
        return None

    def end_session(self, session: int) -> bool:
        """End ``session`` (roll back its transaction, release its locks, break its
        connection) from this connection; whether it was still there."""
        raise NotImplementedError(f"{self.connection.vendor} sessions cannot be ended")
