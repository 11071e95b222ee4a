"""Where every vendor-specific statement and every use of Django's private connection
attributes lives: one module per database behind the interface of ``base.Dialect``.

Adding a database, or upgrading Django, means reading this package."""

from __future__ import annotations

import weakref
from typing import Any

from django.db import connections

from firefly_tasks.dialects.base import Claim, Completions, Dialect
from firefly_tasks.dialects.mysql import MySQLDialect
from firefly_tasks.dialects.postgresql import PostgreSQLDialect
from firefly_tasks.dialects.rollup_rows import RollupRows
from firefly_tasks.dialects.sqlite import SQLiteDialect

__all__ = ["DIALECTS", "Claim", "Completions", "Dialect", "RollupRows", "dialect", "writing"]

DIALECTS: dict[str, type[Dialect]] = {
    d.vendor: d for d in (PostgreSQLDialect, SQLiteDialect, MySQLDialect)
}

# One dialect per connection object (each thread has its own), holding what it built.
_dialects: weakref.WeakKeyDictionary[Any, Dialect] = weakref.WeakKeyDictionary()


def writing(queryset: Any) -> Dialect:
    """The dialect of the database ``queryset`` writes to: its router's ``db_for_write``, as
    ``bulk_create()`` picks it (through the queryset's private ``_for_write``)."""
    queryset._for_write = True
    return dialect(connections[queryset.db])


def dialect(connection: Any) -> Dialect:
    """The dialect of ``connection`` (a connection or ``django.db.connection``'s proxy)."""
    conn = connections[connection.alias]
    found = _dialects.get(conn)
    if found is None:
        cls = DIALECTS.get(conn.vendor)
        if cls is None:
            raise NotImplementedError(f"Firefly does not support the {conn.vendor} database.")
        found = _dialects[conn] = cls(conn)
    return found
