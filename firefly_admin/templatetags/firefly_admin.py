from __future__ import annotations

import datetime

from django import template
from django.utils.safestring import SafeString

from firefly_admin import display

register = template.Library()


@register.filter
def badge(kind: str, label: str | None = None) -> SafeString:
    return display.badge(kind, label)


@register.filter
def age(delta: datetime.timedelta | float | None) -> str:
    return display.age(delta)


@register.filter
def duration(delta: datetime.timedelta | None) -> str:
    return display.duration(delta)


@register.filter
def moment(value: datetime.datetime | None) -> SafeString | str:
    return display.moment(value)
