"""The admin's form of a periodic schedule: every value checked by the rules of
``FIREFLY_SCHEDULES`` (``firefly_tasks.declarations.spec``), the task chosen among the
registered ones only (never a free dotted path), the arguments typed as JSON."""

from __future__ import annotations

import json
import zoneinfo
from typing import TYPE_CHECKING, Any

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from firefly_tasks import serialization
from firefly_tasks.declarations import ScheduleSpec, spec
from firefly_tasks.exceptions import InvalidScheduleError
from firefly_tasks.models import ScheduleModel
from firefly_tasks.registry import registry


def _zones() -> list[tuple[str, str]]:
    return [("", _("TIME_ZONE (the project's)"))] + [
        (zone, zone) for zone in sorted(zoneinfo.available_timezones())
    ]


if TYPE_CHECKING:
    _ModelForm = forms.ModelForm[ScheduleModel]  # generic only to the type checker
else:
    _ModelForm = forms.ModelForm


class ScheduleForm(_ModelForm):
    func_name = forms.ChoiceField(label=gettext_lazy("Task"), choices=())
    time_zone = forms.ChoiceField(
        label=gettext_lazy("Time zone"),
        choices=(),
        required=False,
        help_text=gettext_lazy("where cron is read"),
    )
    every_seconds = forms.FloatField(
        label=gettext_lazy("Every"),
        required=False,
        min_value=0.001,
        help_text=gettext_lazy("seconds between ticks; give this or cron, not both"),
    )
    args = forms.JSONField(
        label=gettext_lazy("Arguments"),
        required=False,
        initial=list,
        help_text=gettext_lazy('a JSON list, e.g. ["daily", 3]'),
    )
    kwargs = forms.JSONField(
        label=gettext_lazy("Keyword arguments"),
        required=False,
        initial=dict,
        help_text=gettext_lazy('a JSON object, e.g. {"limit": 100}'),
    )

    class Meta:
        model = ScheduleModel
        fields = ("name", "func_name", "cron", "time_zone", "queue", "priority", "overlap",
                  "missed", "enabled")  # fmt: skip
        # The model's fields have no verbose_name (naming one would take a migration).
        labels = {
            "name": gettext_lazy("Name"),
            "cron": gettext_lazy("Cron"),
            "queue": gettext_lazy("Queue"),
            "priority": gettext_lazy("Priority"),
            "overlap": gettext_lazy("Overlap"),
            "missed": gettext_lazy("Missed"),
            "enabled": gettext_lazy("Enabled"),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "func_name" not in self.fields:  # shown read-only: nothing to set up
            self.spec: ScheduleSpec | None = None
            return
        task_field, zone_field = self.fields["func_name"], self.fields["time_zone"]
        assert isinstance(task_field, forms.ChoiceField)
        assert isinstance(zone_field, forms.ChoiceField)
        task_field.choices = [(name, name) for name in registry.names()]
        zone_field.choices = _zones()
        self.fields["cron"].required = False
        row = self.instance
        if not row._state.adding:
            if row.every is not None:
                self.initial["every_seconds"] = row.every.total_seconds()
            try:
                call_args, call_kwargs = serialization.loads_plain(row.params_data)
            except (ValueError, TypeError, RecursionError):
                call_args, call_kwargs = [], {}
            self.initial["args"], self.initial["kwargs"] = call_args, call_kwargs
        self.spec = None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        entry: dict[str, Any] = {"task": data["func_name"]}
        for key in ("queue", "priority", "overlap", "missed", "enabled"):
            if data.get(key) not in (None, ""):
                entry[key] = data[key]
        if data.get("cron"):
            entry["cron"] = data["cron"]
        if data.get("every_seconds") is not None:
            entry["every"] = data["every_seconds"]
        if data.get("time_zone"):
            entry["timezone"] = data["time_zone"]
        entry["args"] = [] if data.get("args") is None else data["args"]
        entry["kwargs"] = {} if data.get("kwargs") is None else data["kwargs"]
        try:
            self.spec = spec(data["name"], entry)
        except InvalidScheduleError as exc:
            # "Schedule 'x': ..." reads as the form's own error without the prefix.
            raise forms.ValidationError(str(exc).split(": ", 1)[-1]) from exc
        return data


def arguments_text(row: ScheduleModel) -> str:
    """A schedule's stored arguments as the JSON the form takes."""
    try:
        call_args, call_kwargs = serialization.loads_plain(row.params_data)
    except (ValueError, TypeError, RecursionError):
        return _("(undecodable)")
    return json.dumps({"args": call_args, "kwargs": call_kwargs})
