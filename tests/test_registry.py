"""Which tasks may run: ``firefly_tasks.registry``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.test import override_settings

from firefly_tasks.decorators import Task
from firefly_tasks.exceptions import UnknownTaskError
from firefly_tasks.execution import run_alone
from firefly_tasks.models import TaskModel, TaskStatus
from firefly_tasks.registry import registry
from tests.testapp import tasks

VIEWS_MODULE = "tests.testapp.views"
VIEWS_TASK = "tests.testapp.views.send_welcome"
OUTSIDE_MODULE = "tests.outside_app_tasks"
OUTSIDE_TASK = "tests.outside_app_tasks.outside_task"


@pytest.fixture
def unimported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither test module is imported nor registered, whatever ran before."""
    for module, name in ((VIEWS_MODULE, VIEWS_TASK), (OUTSIDE_MODULE, OUTSIDE_TASK)):
        monkeypatch.delitem(sys.modules, module, raising=False)
        monkeypatch.delitem(registry._tasks, name, raising=False)
    monkeypatch.delattr(sys.modules["tests.testapp"], "views", raising=False)
    monkeypatch.delattr(sys.modules["tests"], "outside_app_tasks", raising=False)


def run_stored(func_name: str, params_data: str = "[[],{}]") -> TaskModel:
    row = TaskModel.objects.create(func_name=func_name, queue="default", params_data=params_data)
    (claimed,) = TaskModel.objects.claim(["default"], 1)
    assert claimed.pk == row.pk
    run_alone(claimed)
    row.refresh_from_db()
    return row


def test_task_name_is_module_and_qualname() -> None:
    assert tasks.add.name == "tests.testapp.tasks.add"
    assert tasks.async_add.name == "tests.testapp.tasks.async_add"


def test_task_name_of_a_method_uses_its_qualname() -> None:
    assert tasks.Maintenance.vacuum.name == "tests.testapp.tasks.Maintenance.vacuum"
    assert registry.resolve("tests.testapp.tasks.Maintenance.vacuum") is tasks.Maintenance.vacuum


def test_autodiscovery_registered_the_tasks_modules_of_installed_apps() -> None:
    assert "tests.testapp.tasks.add" in registry.names()
    assert registry.get("tests.testapp.tasks.add") is tasks.add
    assert tasks.add in list(registry)


def test_resolve_returns_the_registered_task() -> None:
    assert registry.resolve("tests.testapp.tasks.write_note") is tasks.write_note


def test_unknown_name_raises_unknown_task_error() -> None:
    with pytest.raises(UnknownTaskError, match=r"'tests\.testapp\.tasks\.moved_away' is not a"):
        registry.resolve("tests.testapp.tasks.moved_away")


def test_undecorated_function_of_an_installed_app_is_refused() -> None:
    # current_task is imported into the tasks module, but it is not a task.
    with pytest.raises(UnknownTaskError):
        registry.resolve("tests.testapp.tasks.current_task")


def test_missing_module_of_an_installed_app_is_refused() -> None:
    with pytest.raises(UnknownTaskError):
        registry.resolve("tests.testapp.no_such_module.func")


@override_settings(FIREFLY_TASK_ALIASES={"billing.tasks.old_add": "tests.testapp.tasks.add"})
def test_alias_maps_an_old_name_to_the_new_task() -> None:
    assert registry.resolve("billing.tasks.old_add") is tasks.add


@override_settings(FIREFLY_TASK_ALIASES={"billing.tasks.old_add": "billing.tasks.new_add"})
def test_alias_to_an_unknown_name_names_both_in_the_error() -> None:
    with pytest.raises(UnknownTaskError, match=r"'billing.tasks.new_add' \(alias of 'billing"):
        registry.resolve("billing.tasks.old_add")


@override_settings(FIREFLY_TASK_ALIASES={"billing.tasks.old_add": "tests.testapp.tasks.add"})
def test_row_stored_under_an_aliased_name_runs_the_new_task(db: None) -> None:
    row = run_stored("billing.tasks.old_add", "[[2,3],{}]")

    assert row.status == TaskStatus.COMPLETED
    assert row.returned == 5


def test_module_of_an_installed_app_is_imported_on_demand(unimported: None) -> None:
    assert VIEWS_MODULE not in sys.modules

    resolved = registry.resolve(VIEWS_TASK)

    assert VIEWS_MODULE in sys.modules
    assert resolved.name == VIEWS_TASK
    assert isinstance(resolved, Task)
    assert resolved("Ada") == "welcome Ada"


def test_task_in_a_views_module_runs_from_its_stored_name(db: None, unimported: None) -> None:
    row = run_stored(VIEWS_TASK, '[["Ada"],{}]')

    assert row.status == TaskStatus.COMPLETED
    assert row.returned == "welcome Ada"


def test_module_outside_installed_apps_is_not_imported_and_its_task_refused(
    unimported: None,
) -> None:
    with pytest.raises(UnknownTaskError):
        registry.resolve(OUTSIDE_TASK)

    assert OUTSIDE_MODULE not in sys.modules


def test_task_outside_installed_apps_fails_without_importing_its_module(
    db: None, unimported: None
) -> None:
    row = run_stored(OUTSIDE_TASK)

    assert row.status == TaskStatus.FAILED
    assert "not a registered task" in row.error
    assert OUTSIDE_MODULE not in sys.modules


@pytest.mark.parametrize("name", ["os.system", "subprocess.run", "builtins.eval", "os"])
def test_standard_library_callables_are_refused(name: str) -> None:
    with pytest.raises(UnknownTaskError):
        registry.resolve(name)


def test_os_system_stored_as_a_task_fails_and_never_runs(db: None, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    row = run_stored("os.system", f'[["touch {marker}"],{{}}]')

    assert row.status == TaskStatus.FAILED
    assert "UnknownTaskError" in row.error
    assert row.retry_attempts == 0
    assert not marker.exists()
