"""A task defined outside ``tasks.py``: autodiscovery never imports this module.

The registry imports it when a consumer meets one of its tasks, because it belongs to an
installed app (``tests.testapp``).
"""

from __future__ import annotations

from firefly_tasks import task


@task()
def send_welcome(name: str) -> str:
    return f"welcome {name}"
