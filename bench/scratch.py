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
        from bench.databases import Database

        yield Database(vendor, label).name  # dropped when this script exits
        return
    where = "/dev/shm" if in_memory and os.path.isdir("/dev/shm") else None
    folder = tempfile.mkdtemp(prefix=f"ff{label}-", dir=where)
    try:
        yield os.path.join(folder, f"{label}.sqlite3")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def set_up(vendor: str, name: str, overrides: dict[str, object] | None = None) -> None:
    """Point this process at the database ``name`` (with settings ``overrides``, which its
    consumer processes get too, through the environment), set Django up and migrate."""
    import json

    os.environ.update(
        FIREFLY_BENCH_DB=vendor,
        FIREFLY_BENCH_DB_NAME=name,
        DJANGO_SETTINGS_MODULE="bench.settings",
        FIREFLY_BENCH_OVERRIDES=json.dumps(overrides or {}),
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
