"""Reading the task table: the half of ``TaskQuerySet`` that changes no task's state (the
other half is ``firefly_tasks.queryset``, the only writer of state)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from firefly_tasks.states import FINISHED_STATUSES, Event, TaskStatus, sources


class TaskReads(models.QuerySet[Any]):
    """Finding tasks, and deleting finished ones: ``TaskQuerySet``'s reading half."""

    def ready(self, now: datetime.datetime | None = None) -> TaskReads:
        """Tasks that a consumer may claim now."""
        return self.filter(status__in=sources(Event.CLAIM), not_before__lte=now or timezone.now())

    def scheduled(self, now: datetime.datetime | None = None) -> TaskReads:
        """Tasks waiting for their ``eta`` or retry delay."""
        return self.filter(status__in=sources(Event.CLAIM), not_before__gt=now or timezone.now())

    def running(self) -> TaskReads:
        return self.filter(status=TaskStatus.RUNNING)

    def finished(self) -> TaskReads:
        return self.filter(status__in=FINISHED_STATUSES)

    def blocked(self) -> TaskReads:
        """Tasks waiting for a slot of their concurrency key (``firefly_tasks.slots``)."""
        return self.filter(status=TaskStatus.BLOCKED)

    def tagged(self, *tags: str) -> TaskReads:
        """Tasks with every one of ``tags`` (an indexed lookup of ``TaskTag`` each)."""
        found = self
        for tag in tags:
            found = found.filter(tag_set__tag=tag)
        return found

    def finished_before(
        self, cutoff: datetime.datetime, statuses: Sequence[str] = FINISHED_STATUSES
    ) -> TaskReads:
        """Finished tasks whose completion, failure or cancellation came before ``cutoff``."""
        condition = Q()
        for status, field in (
            (TaskStatus.COMPLETED, "completed"),
            (TaskStatus.FAILED, "failed"),
            (TaskStatus.CANCELLED, "cancelled"),
        ):
            if status in statuses:
                condition |= Q(status=status, **{f"{field}__lt": cutoff})
        return self.filter(condition) if condition else self.none()

    def prune(self, chunk_size: int = 1000) -> int:
        """Delete these tasks and their attempts in chunks; return how many tasks went. A
        task that a blocked task waits for stays: that one reads its result when it runs."""
        attempts = attempt_model(self.model)._default_manager.using(self.db)
        deleted = 0
        going = self.exclude(dependant_edges__child__status=TaskStatus.BLOCKED)
        while ids := list(going.values_list("pk", flat=True)[:chunk_size]):
            with transaction.atomic(using=self.db):
                attempts.filter(task_id__in=ids).delete()
                self.model._default_manager.using(self.db).filter(pk__in=ids).delete()
            deleted += len(ids)
        return deleted


def attempt_model(model: type[models.Model]) -> Any:
    """The attempt model of the task model ``model`` (``TaskAttempt``, or a test's)."""
    return model._meta.get_field("attempts").related_model
