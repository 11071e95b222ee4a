"""The Django system under test, as the agent sees it: which one (``FIREFLY_BENCH_SYSTEM``),
the connection to its queue's tables, and one adapter per system to schedule tasks and read
them back through the system's own public API."""

from __future__ import annotations

import itertools
import os
import uuid
from typing import Any

SYSTEM = os.environ.get("FIREFLY_BENCH_SYSTEM", "firefly")
# "ffqueue": Firefly's tables are on the "queue" alias (bench/dbconf.py).
ALIAS = "queue" if os.environ.get("FIREFLY_BENCH_QUEUE_DB") == "1" else "default"


def queue_connection() -> Any:
    """The connection to the database that holds the queue's tables."""
    from django.db import connections

    return connections[ALIAS]


def auto_pk(field: Any) -> bool:
    """Whether a model field is a key the database numbers itself."""
    from django.db import models

    return isinstance(field, models.AutoField | models.BigAutoField | models.SmallAutoField)


# One adapter per Django system ---------------------------------------------------------------


class Adapter:
    """What the benchmarks need from a Django task system, through its own public API."""

    apps: tuple[str, ...] = ()  # app labels whose tables are the queue's
    admin_apps: tuple[str, ...] = ()  # app labels whose admin pages the dashboard figure times
    done_status = "completed"
    done_field = "completed"
    ready_filter: dict[str, Any] = {}

    @property
    def model(self) -> Any:
        raise NotImplementedError

    def task(self, workload: str) -> Any:
        raise NotImplementedError

    def schedule(self, workload: str) -> Any:
        """One task, the way a user schedules one; returns its primary key."""
        raise NotImplementedError

    def schedule_many(self, workload: str, n: int) -> None:
        raise NotImplementedError

    def has_schedule_many(self) -> bool:
        return False

    def started_at(self, pks: list[Any]) -> dict[Any, float | None]:
        """For the latency figure: when each ``stamp`` task started (its return value)."""
        raise NotImplementedError

    # For a peer without a bulk API: its rows, as its own schedule would write them.
    result_field = ""  # where the peer keeps a task's return value

    def bulk_insert(self, n: int, **fields: Any) -> None:
        """``n`` rows of ``fields``, in INSERTs of 5,000 rows."""
        self.model.objects.bulk_create([self.model(**fields) for _ in range(n)], batch_size=5000)

    def returned(self, pks: list[Any], key: Any = None) -> dict[Any, Any]:
        """The return value of each task in ``pks`` that completed, None for the others."""
        rows = self.model.objects.filter(pk__in=pks)
        return {
            (key(r.pk) if key else r.pk): (
                getattr(r, self.result_field) if r.status == self.done_status else None
            )
            for r in rows
        }

    # How row g of a million finished tasks differs from the template row, field by field
    # (see ``Seeder``). Fields not named keep the template's value.
    statuses: tuple[tuple[int, str], ...] = ()  # (percentile bound, status)

    def finished_spec(self) -> dict[str, tuple[Any, ...]]:
        raise NotImplementedError


class FireflyAdapter(Adapter):
    apps = ("firefly_tasks",)
    admin_apps = ("firefly_tasks", "firefly_admin")
    ready_filter = {"status": "created"}

    @property
    def model(self) -> Any:
        from firefly_tasks.models import TaskModel

        return TaskModel

    def task(self, workload: str) -> Any:
        from bench.benchapp import tasks

        return getattr(tasks, workload)

    def schedule(self, workload: str) -> Any:
        return self.task(workload).schedule().pk

    def has_schedule_many(self) -> bool:
        return True

    def schedule_many(self, workload: str, n: int) -> None:
        self.task(workload).schedule_many([()] * n)

    def started_at(self, pks: list[Any]) -> dict[Any, float | None]:
        rows = self.model.objects.filter(pk__in=pks)
        return {r.pk: (r.returned if r.status == "completed" else None) for r in rows}

    statuses = ((97, "completed"), (99, "failed"), (100, "cancelled"))

    def finished_spec(self) -> dict[str, tuple[Any, ...]]:
        return {
            "func_name": ("cycle", [self.task(w).name for w in ("noop", "sleep10", "stamp")]),
            "status": ("status",),
            "created": ("time", 0.0),
            "not_before": ("time", 0.0),
            "started": ("time_when", ("completed", "failed"), 0.001),
            "completed": ("time_when", ("completed",), 0.005),
            "failed": ("time_when", ("failed",), 0.005),
            "cancelled": ("time_when", ("cancelled",), 0.005),
            "attempt": ("when", ("cancelled",), 0, 1),
            "worker": ("value", None),
            "error": ("when", ("failed",), "RuntimeError: seeded failure", ""),
            "returned_data": ("when_tpl", ("failed", "cancelled"), None),
            "returned_preview": ("when_tpl", ("failed", "cancelled"), ""),
        }


class FeaturesAdapter(FireflyAdapter):
    """The "fffeat" system: Firefly with the features of the other issues in use. Its no-op
    tasks are calls of ``featured`` (declared with a timeout), each scheduled with a unique key
    of its own (none is a duplicate) and two tags; its consumer runs ten schedules
    (``FIREFLY_BENCH_FEATURES``, bench/settings.py). Other workloads are Firefly's own."""

    TAGS = ("bench", "features")

    def __init__(self) -> None:
        # Keys distinct from any earlier seed's, whether its tasks finished or not.
        self.prefix = uuid.uuid4().hex[:12]
        self.numbers = itertools.count()

    def featured(self) -> Any:
        prefix = self.prefix
        return self.task("featured").using(
            unique_key=lambda i: f"{prefix}-{i}", tags=list(self.TAGS)
        )

    def schedule(self, workload: str) -> Any:
        if workload != "noop":
            return super().schedule(workload)
        return self.featured().schedule(next(self.numbers)).pk

    def schedule_many(self, workload: str, n: int) -> None:
        if workload != "noop":
            return super().schedule_many(workload, n)
        self.featured().schedule_many([(next(self.numbers),) for _ in range(n)])


class Ff04Adapter(Adapter):
    apps = ("django_firefly_tasks",)
    admin_apps = ("django_firefly_tasks",)
    ready_filter = {"status": "created"}
    result_field = "returned"

    @property
    def model(self) -> Any:
        from django_firefly_tasks.models import TaskModel

        return TaskModel

    def task(self, workload: str) -> Any:
        from bench.peers.ff04 import tasks

        return getattr(tasks, workload)

    def schedule(self, workload: str) -> Any:
        return self.task(workload).schedule().pk

    def schedule_many(self, workload: str, n: int) -> None:
        # 0.4.0 has no bulk API: the rows its schedule() would write, in one INSERT.
        from django_firefly_tasks._private import consts
        from django_firefly_tasks._private.utils import get_func_path, serialize_object

        self.bulk_insert(
            n,
            func_name=get_func_path(self.task(workload).__wrapped__),
            raw_params=serialize_object({"args": (), "kwargs": {}}),
            not_before=None,
            queue=consts.DEFAULT_QUEUE,
            status="created",
            retry_delay=consts.RETRY_DELAY,
            max_retries=consts.MAX_RETRIES,
        )

    def started_at(self, pks: list[Any]) -> dict[Any, float | None]:
        return self.returned(pks)

    statuses = ((98, "completed"), (100, "failed"))

    def finished_spec(self) -> dict[str, tuple[Any, ...]]:
        return {
            "status": ("status",),
            "created": ("time", 0.0),
            "completed": ("time_when", ("completed",), 0.005),
            "failed": ("time_when", ("failed",), 0.005),
        }


class DtdbAdapter(Adapter):
    apps = ("django_tasks_database",)
    admin_apps = ("django_tasks_database",)
    done_status = "SUCCESSFUL"
    done_field = "finished_at"
    ready_filter = {"status": "READY"}
    result_field = "return_value"

    @property
    def model(self) -> Any:
        from django_tasks_db.models import DBTaskResult

        return DBTaskResult

    def task(self, workload: str) -> Any:
        from bench.peers.dtdb import tasks

        return getattr(tasks, workload)

    def schedule(self, workload: str) -> Any:
        return self.task(workload).enqueue().id

    def schedule_many(self, workload: str, n: int) -> None:
        # django-tasks has no bulk enqueue: the rows its enqueue() would write, in one INSERT.
        from django_tasks_db.models import get_date_max

        task = self.task(workload)
        self.bulk_insert(
            n,
            args_kwargs={"args": [], "kwargs": {}},
            priority=task.priority,
            task_path=task.module_path,
            queue_name=task.queue_name,
            run_after=get_date_max(),
            backend_name="default",
        )

    def started_at(self, pks: list[Any]) -> dict[Any, float | None]:
        return self.returned(pks, key=str)

    statuses = ((98, "SUCCESSFUL"), (100, "FAILED"))

    def finished_spec(self) -> dict[str, tuple[Any, ...]]:
        return {
            "id": ("uuid",),
            "status": ("status",),
            "enqueued_at": ("time", 0.0),
            "started_at": ("time", 0.001),
            "finished_at": ("time", 0.005),
        }


ADAPTERS = {
    "firefly": FireflyAdapter,
    "fffeat": FeaturesAdapter,
    "ff04": Ff04Adapter,
    "dtdb": DtdbAdapter,
}
