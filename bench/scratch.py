"""A throwaway database for a bench script that measures one build in one process
(``rollup_cost.py``, ``timeout_cost.py``, ``loop_cpu.py``, ``scheduler.py``,
``stop_latency.py``): SQLite in a temporary folder (in memory, on /dev/shm, when asked and
there is one), or a database on the PostgreSQL or MariaDB server, dropped when the script
exits."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def database(vendor: str, label: str, *, in_memory: bool = False) -> Iterator[str]:
    """The name of a fresh database of ``vendor`` for the ``with`` block."""
    if vendor != "sqlite":
        from bench import lib

        yield lib.Database(vendor, label).name  # dropped when this script exits
        return
    where = "/dev/shm" if in_memory and os.path.isdir("/dev/shm") else None
    folder = tempfile.mkdtemp(prefix=f"ff{label}-", dir=where)
    try:
        yield os.path.join(folder, f"{label}.sqlite3")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
