"""Reaching other sessions: ending one, how a consumer fences a task thread that ran past its
timeout and would not stop (docs/timeouts.md), telling a deadlock with one, and notifying the
consumers' listeners. Part of every dialect (``Dialect`` inherits it). PostgreSQL and MariaDB
can end a session, SQLite cannot (a connection there is a file handle); only PostgreSQL
notifies."""

from __future__ import annotations

from typing import Any


class Sessions:
    connection: Any

    def session_id(self) -> int | None:
        """This connection's server session, for :meth:`end_session` on another connection;
        ``None`` where sessions cannot be ended, or while the connection is closed."""
        return None

    def server_uptime(self) -> float | None:
        """Seconds since the database server started: a worker silent since before then went
        quiet with a restart (``firefly_tasks.maintenance``). ``None`` on SQLite (no server)."""
        return None

    def end_session(self, session: int) -> bool:
        """End ``session`` (roll back its transaction, release its locks, break its
        connection) from this connection; whether it was still there."""
        raise NotImplementedError(f"{self.connection.vendor} sessions cannot be ended")

    def is_deadlock(self, exc: BaseException) -> bool:
        """Whether ``exc`` is this session picked as the victim of a deadlock: its whole
        transaction was rolled back, and running it again may succeed."""
        return False

    def notify(self, payload: str) -> None:
        """Tell the consumers' listeners ``payload`` once this transaction commits; where
        nobody listens, they learn at their next heartbeat instead."""
