"""A module outside ``INSTALLED_APPS``: the registry must never import it for a stored name."""

from __future__ import annotations

from firefly_tasks import task

IMPORTED = True


@task()
def outside_task() -> str:
    return "should never run"
