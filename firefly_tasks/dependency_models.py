"""The edges of workflows: which task waits for which (``firefly_tasks.dependencies``);
``firefly_tasks.models`` exports them."""

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
