"""Forms of the dashboard's intermediate pages and queue controls, and of the task and worker
pages (read-only: their labels)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from firefly_tasks.models import TaskModel
from firefly_tasks.queues import known_queues
from firefly_tasks.registry import registry
from firefly_tasks.states import TaskStatus

if TYPE_CHECKING:
    _ModelForm = forms.ModelForm[Any]  # generic only to the type checker
else:
    _ModelForm = forms.ModelForm


# The engine's fields have no verbose_name, and naming one would take a migration: the task and
# worker pages name them here, in the active language.
class TaskForm(_ModelForm):
    class Meta:
        labels = {
            "func_name": gettext_lazy("func name"),
            "queue": gettext_lazy("queue"),
            "priority": gettext_lazy("priority"),
            "error": gettext_lazy("error"),
            "schedule": gettext_lazy("schedule"),
            "scheduled_for": gettext_lazy("scheduled for"),
            "timeout": gettext_lazy("timeout"),
            "attempt": gettext_lazy("attempt"),
            "retry_attempts": gettext_lazy("retry attempts"),
            "max_retries": gettext_lazy("max retries"),
            "retry_delay": gettext_lazy("retry delay"),
            "retry_backoff": gettext_lazy("retry backoff"),
            "lost_attempts": gettext_lazy("lost attempts"),
            "snoozes": gettext_lazy("snoozes"),
            "unique_key": gettext_lazy("unique key"),
            "concurrency_key": gettext_lazy("concurrency key"),
            "concurrency_limit": gettext_lazy("concurrency limit"),
            "label": gettext_lazy("label"),
            "on_success": gettext_lazy("on success"),
            "on_failure": gettext_lazy("on failure"),
            "serializer": gettext_lazy("serializer"),
            "backend": gettext_lazy("backend"),
        }


class WorkerForm(_ModelForm):
    class Meta:
        labels = {
            "name": gettext_lazy("name"),
            "hostname": gettext_lazy("hostname"),
            "pid": gettext_lazy("pid"),
            "concurrency": gettext_lazy("concurrency"),
            "pool": gettext_lazy("pool"),
            "version": gettext_lazy("version"),
            "state": gettext_lazy("state"),
            "processed": pgettext_lazy("tasks a worker ran", "processed"),
            "failed": pgettext_lazy("tasks a worker ran", "failed"),
        }


def registered_task_choices() -> list[tuple[str, str]]:
    return [("", "---------"), *((name, name) for name in registry.names())]


class RenameTaskForm(forms.Form):
    """The new name must be a registered task: a free-text dotted path is refused."""

    func_name = forms.ChoiceField(
        label=gettext_lazy("New task name"),
        choices=registered_task_choices,
        help_text=gettext_lazy("Only registered tasks are offered: a consumer runs nothing else."),
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
            raise forms.ValidationError(
                _("%(name)r is not a known queue."), code="unknown", params={"name": name}
            )
        return name


class PauseQueueForm(QueueForm):
    """The pause page: the queue, and why it is paused (shown to other operators)."""

    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        label=gettext_lazy("Reason"),
        error_messages={
            "required": gettext_lazy("Say why the queue is paused: other operators will see it."),
            "max_length": gettext_lazy(
                "Keep the reason to %(limit_value)d characters or fewer "
                "(this one has %(show_value)d)."
            ),
        },
        widget=forms.TextInput(attrs={"size": 80, "autofocus": True}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["queue"].widget = forms.HiddenInput()
        # Here, not on the field: the number goes into the text of the active language.
        self.fields["reason"].help_text = _(
            "Shown on the dashboard with your name until the queue is resumed, "
            "at most %(limit)s characters."
        ) % {"limit": REASON_MAX_LENGTH}


def _holds_unfinished_tasks(queue: str) -> bool:
    # One probe of the (status, queue) index, not a scan.
    return TaskModel.objects.filter(
        status__in=[TaskStatus.CREATED, TaskStatus.RUNNING], queue=queue
    ).exists()
