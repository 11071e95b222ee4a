from __future__ import annotations

import datetime
from typing import Any

from django import template
from django.template import Context
from django.utils.safestring import SafeString

from firefly_admin import display

register = template.Library()


@register.filter
def badge(kind: str, label: str | None = None) -> SafeString:
    return display.badge(kind, label)


@register.filter
def progress(found: Any) -> SafeString | str:
    return display.progress(found)


@register.filter
def count(value: int | None) -> str:
    return display.count(value)


@register.filter
def age(delta: datetime.timedelta | float | None) -> str:
    return display.age(delta)


@register.filter
def duration(delta: datetime.timedelta | None) -> str:
    return display.duration(delta)


@register.filter
def percent(value: float | None) -> str:
    return display.percent(value)


@register.filter
def percentile(value: Any) -> str:
    return display.percentile(value)


@register.filter
def moment(value: datetime.datetime | None) -> SafeString | str:
    return display.moment(value)


@register.inclusion_tag("firefly_admin/dashboard/pause_note.html", takes_context=True)
def pause_note(context: Context, queue: str) -> dict[str, Any]:
    """Why ``queue`` is paused, by whom and since when, from the control rows the dashboard
    loaded (``pauses`` in the context)."""
    pauses = context.get("pauses") or {}
    return {"control": pauses.get(queue)}
