"""The tables of workflows: which task waits for which (``firefly_tasks.dependencies``), and
how far running tasks have got (``firefly_tasks.progress``); ``firefly_tasks.models`` exports
them."""

from __future__ import annotations

from django.db import models


class TaskDependency(models.Model):
    """``child`` runs after ``parent`` finished: a link of a chain, a member of a group and
    its callback, or a ``depends_on``. The child counts its unfinished parents in
    ``TaskModel.waiting_for``; the transaction that records a parent's final outcome takes it
    off that count (and a requeue of the parent puts it back). Edges never change."""

    # No index of its own: the unique (parent, child) constraint leads with it.
    parent = models.ForeignKey(
        "firefly_tasks.TaskModel",
        on_delete=models.CASCADE,
        related_name="dependant_edges",
        db_index=False,
    )
    child = models.ForeignKey(
        "firefly_tasks.TaskModel",
        on_delete=models.CASCADE,
        related_name="dependency_edges",
        db_index=False,  # firefly_dependency_child below
    )
    position = models.PositiveIntegerField(
        default=0, help_text="where the parent's result goes among the child's inputs"
    )

    class Meta:
        verbose_name = "task dependency"
        verbose_name_plural = "task dependencies"
        constraints = [
            models.UniqueConstraint(fields=["parent", "child"], name="firefly_dependency_edge"),
        ]
        indexes = [
            models.Index(fields=["child", "position"], name="firefly_dependency_child"),
        ]

    def __str__(self) -> str:
        return f"#{self.child_id} after #{self.parent_id}"


class TaskProgress(models.Model):
    """How far a running task has got, as it last said (``current_task().set_progress()``):
    a row of its own, written on a connection of its own, so that reporting progress never
    touches the task's row (a cancel or a completion never waits for it)."""

    task = models.OneToOneField(
        "firefly_tasks.TaskModel",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="progress",
        db_constraint=False,  # written outside the task's transaction, maybe before its insert
    )
    done = models.BigIntegerField()
    total = models.BigIntegerField(null=True, blank=True)
    message = models.CharField(max_length=200, blank=True)
    updated = models.DateTimeField()

    class Meta:
        verbose_name = "task progress"
        verbose_name_plural = "task progress"

    def __str__(self) -> str:
        of = f" of {self.total}" if self.total is not None else ""
        return f"#{self.task_id}: {self.done}{of}"

    @property
    def percent(self) -> int | None:
        """How much of the total is done, from 0 to 100; None without a total."""
        if not self.total:
            return None
        return max(0, min(100, round(100 * self.done / self.total)))
