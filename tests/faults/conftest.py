"""Fixtures of the fault suite: its own database servers, and the test process's ORM pointed
at them.

The suite runs once per CI run, not once per database leg: ``FIREFLY_FAULTS=1`` enables it
(see .ci/run); elsewhere its tests skip.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import Error, connections

from tests.faults.servers import SERVERS, DatabaseServer

ENABLED = os.environ.get("FIREFLY_FAULTS") == "1"
DATABASE_NAME = "firefly_faults"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="fault suite: runs with FIREFLY_FAULTS=1 (see .ci/run)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here + os.sep):
            item.add_marker(skip)


@contextlib.contextmanager
def default_database(settings_dict: dict[str, Any]) -> Iterator[None]:
    """Point this thread's ``default`` database alias at another server, whatever engine
    the test run was started with; put it back afterwards."""
    previous = connections.settings["default"]

    def switch(to: dict[str, Any]) -> None:
        with contextlib.suppress(Error):  # a connection the server dropped may fail to close
            connections["default"].close()
        connections.settings["default"] = to
        del connections["default"]  # the next use builds a connection of to's engine

    switch(connections.configure_settings({"default": settings_dict})["default"])
    try:
        yield
    finally:
        switch(previous)


@pytest.fixture(scope="module", params=list(SERVERS))
def fault_server(request: pytest.FixtureRequest) -> Iterator[DatabaseServer]:
    """A database server of the suite's own, started; destroyed whatever happens."""
    if not ENABLED:
        pytest.skip("fault suite: runs with FIREFLY_FAULTS=1")
    server = SERVERS[request.param]()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def fault_database(fault_server: DatabaseServer, django_db_blocker: Any) -> Iterator[str]:
    """A migrated database on ``fault_server``, the ``default`` of this process meanwhile."""
    fault_server.create_database(DATABASE_NAME)
    with django_db_blocker.unblock(), default_database(fault_server.django_settings(DATABASE_NAME)):
        call_command("migrate", verbosity=0, interactive=False)
        yield DATABASE_NAME
