"""The Django side of the benchmarks: ``python -m bench.agent COMMAND 'JSON-ARGS'``.

Runs inside the Python of the system under test (Firefly's checkout, or a peer's virtualenv),
with ``DJANGO_SETTINGS_MODULE`` and ``FIREFLY_BENCH_SYSTEM`` set by the orchestrator, and
prints one JSON object on its last line of output. Firefly is used only through its public
surface: ``@task`` functions' ``schedule()``/``schedule_many()``, its documented models and
fields, ``firefly_tasks.testing.run_pending_tasks()`` and the Django admin it registers.

The commands live by family: the queue's tables (``bench/agent_tables.py``), ``enqueue``,
``latency``, ``bigseed`` and ``dashboard`` (``bench/agent_NAME.py``), each through the
system's adapter (``bench/agent_adapters.py``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import django

from bench.agent_adapters import ADAPTERS, SYSTEM, Adapter
from bench.agent_bigseed import cmd_bigseed
from bench.agent_dashboard import cmd_dashboard
from bench.agent_enqueue import cmd_enqueue
from bench.agent_latency import cmd_latency
from bench.agent_tables import cmd_max_pk, cmd_migrate, cmd_ready, cmd_reset, cmd_seed, cmd_stats

COMMANDS: dict[str, Callable[[Adapter, dict[str, Any]], dict[str, Any]]] = {
    "migrate": cmd_migrate,
    "reset": cmd_reset,
    "seed": cmd_seed,
    "ready": cmd_ready,
    "stats": cmd_stats,
    "max_pk": cmd_max_pk,
    "enqueue": cmd_enqueue,
    "latency": cmd_latency,
    "bigseed": cmd_bigseed,
    "dashboard": cmd_dashboard,
}


def main() -> None:
    command = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    django.setup()
    result = COMMANDS[command](ADAPTERS[SYSTEM](), args)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
