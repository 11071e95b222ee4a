"""Forms of the dashboard's intermediate pages and queue controls."""

from __future__ import annotations

from typing import Any

from django import forms

from firefly_tasks.models import TaskModel
from firefly_tasks.queues import known_queues
from firefly_tasks.registry import registry
from firefly_tasks.states import TaskStatus


def registered_task_choices() -> list[tuple[str, str]]:
    return [("", "---------"), *((name, name) for name in registry.names())]


class RenameTaskForm(forms.Form):
    """The new name must be a registered task: a free-text dotted path is refused."""

    func_name = forms.ChoiceField(
        label="New task name",
        choices=registered_task_choices,
        help_text="Only registered tasks are offered: a consumer runs nothing else.",
    )


# A sentence or two: it is shown in the dashboard's tables.
REASON_MAX_LENGTH = 200


class QueueForm(forms.Form):
    """Names a queue the dashboard shows; posted by the pause and resume buttons.

    That is a known queue, or one that tasks are waiting in or running from although nothing
    declares it (the dashboard lists those too, so that they can be paused).
    """

    queue = forms.CharField(max_length=100)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queues = known_queues()

    def clean_queue(self) -> str:
        name: str = self.cleaned_data["queue"]
        if name not in self.queues and not _holds_unfinished_tasks(name):
            raise forms.ValidationError(f"{name!r} is not a known queue.")
        return name


class PauseQueueForm(QueueForm):
    """The pause page: the queue, and why it is paused (shown to other operators)."""

    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        help_text=(
            "Shown on the dashboard with your name until the queue is resumed, "
            f"at most {REASON_MAX_LENGTH} characters."
        ),
        error_messages={
            "required": "Say why the queue is paused: other operators will see it.",
            "max_length": (
                "Keep the reason to %(limit_value)d characters or fewer "
                "(this one has %(show_value)d)."
            ),
        },
        widget=forms.TextInput(attrs={"size": 80, "autofocus": True}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["queue"].widget = forms.HiddenInput()


def _holds_unfinished_tasks(queue: str) -> bool:
    # One probe of the (status, queue) index, not a scan.
    return TaskModel.objects.filter(
        status__in=[TaskStatus.CREATED, TaskStatus.RUNNING], queue=queue
    ).exists()
