"""Forms of the dashboard's intermediate pages and queue controls."""

from __future__ import annotations

from typing import Any

from django import forms

from firefly_tasks.queues import known_queues
from firefly_tasks.registry import registry


def registered_task_choices() -> list[tuple[str, str]]:
    return [("", "---------"), *((name, name) for name in registry.names())]


class RenameTaskForm(forms.Form):
    """The new name must be a registered task: a free-text dotted path is refused."""

    func_name = forms.ChoiceField(
        label="New task name",
        choices=registered_task_choices,
        help_text="Only registered tasks are offered: a consumer runs nothing else.",
    )


class QueueForm(forms.Form):
    """Names a queue the dashboard knows; posted by the pause and resume buttons."""

    queue = forms.CharField(max_length=100)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queues = known_queues()

    def clean_queue(self) -> str:
        name: str = self.cleaned_data["queue"]
        if name not in self.queues:
            raise forms.ValidationError(f"{name!r} is not a known queue.")
        return name
