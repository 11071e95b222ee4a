"""The bookkeeping tables of concurrency and rate limits (``firefly_tasks.slots``,
``firefly_tasks.rates``); ``firefly_tasks.models`` exports them."""

from __future__ import annotations

from django.db import models


class ConcurrencyKey(models.Model):
    """One row per concurrency key in use: what claims and releases of the key's tasks lock,
    one at a time (``firefly_tasks.slots``). The slots themselves are counted from the task
    rows, never kept here, so nothing can leak."""

    key = models.CharField(max_length=255, primary_key=True)
    used = models.DateTimeField(help_text="when a claim or a release last held it")

    class Meta:
        verbose_name = "concurrency key"

    def __str__(self) -> str:
        return self.key


class RateBucket(models.Model):
    """The token bucket of one rate-limit key (``firefly_tasks.rates``): claims of the key's
    tasks take tokens from it, one at a time, holding its row."""

    key = models.CharField(max_length=255, primary_key=True)
    used = models.DateTimeField(help_text="when a claim last held it")
    tokens = models.FloatField()
    updated = models.DateTimeField()
    # The latest start time given to a task claimed past the limit: the next one goes after.
    horizon = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "rate bucket"

    def __str__(self) -> str:
        return self.key


class StuckTask(models.Model):
    """A task thread fenced while still inside a task (``firefly_tasks.fence``): its attempt
    is recorded and its row moved on, but the thread may still be doing the task's work, so
    the slot it took stays taken (its concurrency key's, its queue's) and its unique key stays
    held, until the thread returns or its consumer stops (``firefly_tasks.slots``)."""

    task = models.ForeignKey("firefly_tasks.TaskModel", on_delete=models.CASCADE, related_name="+")
    worker = models.ForeignKey(
        "firefly_tasks.WorkerModel", on_delete=models.CASCADE, related_name="stuck_tasks"
    )
    queue = models.CharField(max_length=100)
    concurrency_key = models.CharField(max_length=255, null=True, blank=True, db_index=True)
    since = models.DateTimeField(help_text="when its thread was fenced")

    class Meta:
        verbose_name = "stuck task"

    def __str__(self) -> str:
        return f"task #{self.task_id} stuck in worker #{self.worker_id}"
