"""How the dashboard renders statuses, ages and times (escaped, theme-aware HTML)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from django.utils import timezone
from django.utils.formats import get_format, number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from firefly_tasks.states import TaskStatus

# What a badge of each kind says, in the active language: statuses, attempts' outcomes,
# workers' liveness, queues' states, timeline events. Other kinds show as they are.
BADGE_LABELS = {
    "created": pgettext_lazy("task status", "created"),
    "blocked": pgettext_lazy("task status", "blocked"),
    "running": pgettext_lazy("task status", "running"),
    "completed": pgettext_lazy("task status", "completed"),
    "failed": pgettext_lazy("task status", "failed"),
    "cancelled": pgettext_lazy("task status", "cancelled"),
    "scheduled": pgettext_lazy("task status", "scheduled"),
    "executing": pgettext_lazy("task status", "executing"),
    "claimed": pgettext_lazy("task status", "claimed"),
    "orphaned": pgettext_lazy("task status", "orphaned"),
    "lost": pgettext_lazy("attempt outcome", "lost"),
    "interrupted": pgettext_lazy("attempt outcome", "interrupted"),
    "released": pgettext_lazy("attempt outcome", "released"),
    "timed_out": pgettext_lazy("attempt outcome", "timed out"),
    "snoozed": pgettext_lazy("attempt outcome", "snoozed"),
    "alive": pgettext_lazy("worker liveness", "alive"),
    "late": pgettext_lazy("worker liveness", "late"),
    "dead": pgettext_lazy("worker liveness", "dead"),
    "stopping": pgettext_lazy("worker liveness", "stopping"),
    "stopped": pgettext_lazy("worker liveness", "stopped"),
    "paused": pgettext_lazy("queue state", "paused"),
    "active": pgettext_lazy("queue state", "active"),
    "admin": pgettext_lazy("timeline event", "admin"),
    "unregistered": pgettext_lazy("task name", "not registered"),
}


def badge(kind: str, label: str | None = None) -> SafeString:
    """A coloured label; its class picks colours from the admin's theme variables."""
    shown = label or BADGE_LABELS.get(kind, kind)
    return format_html('<span class="ff-badge ff-badge-{}">{}</span>', kind, shown)


def status(row: Any) -> SafeString:
    """A task's status badge. The list tells a running task a thread executes from one
    waiting in a claimed batch (``executing``, set by ``metrics.mark_executing``), and a
    blocked task's reason: other tasks, or a slot of its concurrency key."""
    if row.status == TaskStatus.RUNNING and hasattr(row, "executing"):
        shown = badge("executing" if row.executing else "claimed")
        return format_html("{}{}", shown, progress(getattr(row, "progress_now", None)))
    if row.status == TaskStatus.BLOCKED:
        if row.waiting_for:
            why = _("blocked: waiting for %(count)s") % {"count": count(row.waiting_for)}
        else:
            why = _("blocked: waiting for a slot")
        return badge(row.status, why)
    return badge(row.status)


def task_name(name: str, registered: bool) -> SafeString | str:
    """A task's name, flagged when no registered task answers to it here."""
    if registered:
        return name
    return format_html("{} {}", name, badge("unregistered"))


def first_line(text: str, length: int = 120) -> str:
    """The first line of ``text``, cut at ``length`` characters (escaped where rendered)."""
    line = text.strip().partition("\n")[0]
    return line if len(line) <= length else f"{line[: length - 1]}…"


def count(value: int | None) -> str:
    """A count with the active language's thousands separator (``12,345`` in English)."""
    return "—" if value is None else number_format(value, force_grouping=True)


def percent(ratio: float | None) -> str:
    """``12.5 %`` (the active language's decimal separator), or ``—``."""
    return "—" if ratio is None else f"{decimal(ratio * 100, 1)} %"


def column(name: str, description: Any, shown: Callable[[Any], Any] | None = None) -> Any:
    """A ModelAdmin display method for the model field ``name``: its header ``description``
    in the active language (the engine's fields have no translated verbose names: that would
    take a migration), its value through ``shown``, sorting by the field."""

    def value(model_admin: Any, obj: Any) -> Any:
        found = getattr(obj, name)
        return shown(found) if shown is not None else found

    value.short_description = description  # type: ignore[attr-defined]
    value.admin_order_field = name  # type: ignore[attr-defined]
    return value


def moment_field(name: str, description: Any) -> Any:
    """A display method showing the datetime field ``name`` as :func:`moment`."""
    return column(name, description, moment)


def decimal(value: float, places: int) -> str:
    """``value`` rounded to ``places`` decimals, with the active language's separator
    (``number_format`` alone cuts digits off: 1.96 would read 1.9)."""
    return number_format(round(value, places), places)


def seconds_text(seconds: float) -> str:
    """Seconds as short as the setting was written (``3``, ``0.5``, ``1e-09``), with the
    active language's decimal separator (``0,5`` in French)."""
    return f"{seconds:g}".replace(".", get_format("DECIMAL_SEPARATOR"))


def percentile(found: Any) -> str:
    """A :class:`~firefly_admin.percentiles.Percentile` as a duration, ``> 30 min`` when it
    fell in the histogram's open last bucket; ``—`` when nothing was counted."""
    if found is None:
        return "—"
    shown = duration(found.delta)
    return f"> {shown}" if found.above else shown


def age(delta: datetime.timedelta | float | None) -> str:
    """``42 s``, ``3 min``, ``2 h 5 min``, ``4 d 3 h``: precise enough to act on (in the
    active language: ``4 j 3 h`` in French)."""
    if delta is None:
        return "—"
    seconds = delta.total_seconds() if isinstance(delta, datetime.timedelta) else float(delta)
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return _("%(seconds)s s") % {"seconds": decimal(seconds, 1)}
    if seconds < 60:
        return _("%(seconds)s s") % {"seconds": int(seconds)}
    minutes = int(seconds // 60)
    if minutes < 60:
        return _("%(minutes)s min") % {"minutes": minutes}
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        if minutes:
            return _("%(hours)s h %(minutes)s min") % {"hours": hours, "minutes": minutes}
        return _("%(hours)s h") % {"hours": hours}
    days, hours = divmod(hours, 24)
    if hours:
        return _("%(days)s d %(hours)s h") % {"days": days, "hours": hours}
    return _("%(days)s d") % {"days": days}


def relative(value: datetime.datetime, now: datetime.datetime | None = None) -> str:
    """``3 min ago``, ``in 5 min`` or ``just now`` (within a second)."""
    now = now or (timezone.now() if timezone.is_aware(value) else datetime.datetime.now())
    delta = now - value
    if abs(delta.total_seconds()) < 1:
        return _("just now")
    if delta.total_seconds() > 0:
        return _("%(age)s ago") % {"age": age(delta)}
    return _("in %(age)s") % {"age": age(-delta)}


def moment(value: datetime.datetime | None) -> SafeString | str:
    """A point in time, the same way everywhere: the local date and time to the second with
    the time zone's name (``2026-12-04 14:03:07 CET``), then how long ago (or how soon) it is;
    the value to the microsecond in its title. ISO order, so it reads and sorts alike in every
    language."""
    if value is None:
        return "—"
    aware = timezone.is_aware(value)
    local = timezone.localtime(value) if aware else value
    shown = local.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return format_html(
        '<time datetime="{}" title="{}">{}</time> <span class="ff-ago">{}</span>',
        value.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S.%f %Z").strip(),
        shown,
        relative(value),
    )


def elapsed(delta: datetime.timedelta, timeout: float | None) -> str:
    """How long a running attempt has run, against its timeout if it has one."""
    ran = duration(max(delta, datetime.timedelta(0)))
    if timeout is None:
        return ran
    limit = duration(datetime.timedelta(seconds=timeout))
    return _("%(ran)s of %(timeout)s") % {"ran": ran, "timeout": limit}


def duration(delta: datetime.timedelta | None) -> str:
    """``0.2 ms``, ``850 ms``, ``12.3 s``, then as :func:`age`."""
    if delta is None:
        return "—"
    seconds = delta.total_seconds()
    if seconds < 0.01:
        return _("%(milliseconds)s ms") % {"milliseconds": decimal(seconds * 1000, 1)}
    if seconds < 1:
        return _("%(milliseconds)s ms") % {"milliseconds": decimal(seconds * 1000, 0)}
    if seconds < 60:
        return _("%(seconds)s s") % {"seconds": decimal(seconds, 1)}
    return age(delta)


def progress(found: Any) -> SafeString | str:
    """A running task's progress (``TaskProgress``) as a bar and its words: ``7 of 10``
    and its message; "" without one."""
    if found is None:
        return ""
    if found.total:
        words = _("%(done)s of %(total)s") % {
            "done": count(found.done),
            "total": count(found.total),
        }
    else:
        words = _("%(done)s done") % {"done": count(found.done)}
    if found.message:
        words = f"{words}: {found.message}"
    if found.total:
        return format_html(
            '<span class="ff-progress"><progress value="{}" max="{}">{}%</progress> {}</span>',
            str(min(found.done, found.total)),
            str(found.total),
            str(found.percent),
            words,
        )
    return format_html('<span class="ff-progress">{}</span>', words)
