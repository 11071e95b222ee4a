"""How the dashboard renders statuses, ages and times (escaped, theme-aware HTML)."""

from __future__ import annotations

import datetime
from typing import Any

from django.utils import timezone
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from firefly_tasks.states import TaskStatus


def badge(kind: str, label: str | None = None) -> SafeString:
    """A coloured label; its class picks colours from the admin's theme variables."""
    return format_html('<span class="ff-badge ff-badge-{}">{}</span>', kind, label or kind)


def status(row: Any) -> SafeString:
    """A task's status badge. The list tells a running task a thread executes from one
    waiting in a claimed batch (``executing``, set by ``metrics.mark_executing``), and a
    blocked task's reason: other tasks, or a slot of its concurrency key."""
    if row.status == TaskStatus.RUNNING and hasattr(row, "executing"):
        shown = badge("executing" if row.executing else "claimed")
        return format_html("{}{}", shown, progress(getattr(row, "progress_now", None)))
    if row.status == TaskStatus.BLOCKED:
        why = f"waiting for {row.waiting_for:,}" if row.waiting_for else "waiting for a slot"
        return badge(row.status, f"blocked: {why}")
    return badge(row.status)


def task_name(name: str, registered: bool) -> SafeString | str:
    """A task's name, flagged when no registered task answers to it here."""
    if registered:
        return name
    return format_html("{} {}", name, badge("unregistered", "not registered"))


def first_line(text: str, length: int = 120) -> str:
    """The first line of ``text``, cut at ``length`` characters (escaped where rendered)."""
    line = text.strip().partition("\n")[0]
    return line if len(line) <= length else f"{line[: length - 1]}…"


def count(value: int | None) -> str:
    """A count with the active language's thousands separator (``12,345`` in English)."""
    return "—" if value is None else number_format(value, force_grouping=True)


def percent(ratio: float | None) -> str:
    """``12.5 %`` (the active language's decimal separator), or ``—``."""
    return "—" if ratio is None else f"{number_format(ratio * 100, 1)} %"


def percentile(found: Any) -> str:
    """A :class:`~firefly_admin.percentiles.Percentile` as a duration, ``> 30 min`` when it
    fell in the histogram's open last bucket; ``—`` when nothing was counted."""
    if found is None:
        return "—"
    shown = duration(found.delta)
    return f"> {shown}" if found.above else shown


def age(delta: datetime.timedelta | float | None) -> str:
    """``42 s``, ``3 min``, ``2 h 5 min``, ``4 d 3 h``: precise enough to act on."""
    if delta is None:
        return "—"
    seconds = delta.total_seconds() if isinstance(delta, datetime.timedelta) else float(delta)
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def moment(value: datetime.datetime | None) -> SafeString | str:
    """A compact local time: ``14:03:07`` today, ``2024-05-31 14:03`` before; the full
    value is in its title."""
    if value is None:
        return "—"
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    today = timezone.localdate() if timezone.is_aware(value) else datetime.date.today()
    shown = local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M")
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S.%f %Z").strip(),
        shown,
    )


def elapsed(delta: datetime.timedelta, timeout: float | None) -> str:
    """How long a running attempt has run, against its timeout if it has one."""
    ran = duration(max(delta, datetime.timedelta(0)))
    if timeout is None:
        return ran
    return f"{ran} of {duration(datetime.timedelta(seconds=timeout))}"


def duration(delta: datetime.timedelta | None) -> str:
    """``0.2 ms``, ``850 ms``, ``12.3 s``, then as :func:`age`."""
    if delta is None:
        return "—"
    seconds = delta.total_seconds()
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return age(delta)


def progress(found: Any) -> SafeString | str:
    """A running task's progress (``TaskProgress``) as a bar and its words: ``7 of 10``
    and its message; "" without one."""
    if found is None:
        return ""
    words = f"{found.done:,} of {found.total:,}" if found.total else f"{found.done:,} done"
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
