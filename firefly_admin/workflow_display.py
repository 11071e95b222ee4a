"""What the task page shows of a task's workflow: its progress, the tasks it waits for and
the tasks that wait for it (each with its status and a link), and how many have finished."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from firefly_admin import display
from firefly_tasks.models import FINISHED_STATUSES, TaskDependency, TaskModel, TaskProgress

# Members listed on a task page at most; the counts cover every one.
SHOWN = 20


@admin.display(description=gettext_lazy("progress"))
def progress(obj: TaskModel) -> SafeString | str:
    return display.progress(TaskProgress.objects.filter(task_id=obj.pk).first()) or "—"


@admin.display(description=gettext_lazy("waits for"))
def waits_for(obj: TaskModel) -> SafeString | str:
    """The tasks it waits for (a chain's previous link, a group's members, depends_on)."""
    edges = TaskDependency.objects.filter(child_id=obj.pk).order_by("position", "parent_id")
    summary = _tasks(edges, "parent", obj.waiting_for)
    if summary and obj.status == "blocked" and obj.waiting_for:
        waiting = _("waiting for %(count)s") % {"count": display.count(obj.waiting_for)}
        reason = format_html("<p>{}</p>", display.badge("blocked", waiting))
        return reason + summary
    return summary or "—"


@admin.display(description=gettext_lazy("waited for by"))
def waited_for_by(obj: TaskModel) -> SafeString | str:
    """The tasks that wait for it (a chain's next link, a group's callback, dependants)."""
    edges = TaskDependency.objects.filter(parent_id=obj.pk).order_by("child_id")
    return _tasks(edges, "child") or "—"


FIELDS: tuple[Any, ...] = (
    progress,
    waits_for,
    waited_for_by,
    "label",
    "on_success",
    "on_failure",
)


def _tasks(edges: Any, side: str, waiting: int | None = None) -> SafeString | str:
    """``7 of 10 done`` and the first ``SHOWN`` tasks on ``side`` of ``edges``."""
    total = edges.count()
    if not total:
        return ""
    ids = edges.values_list(f"{side}_id", flat=True)
    done = TaskModel.objects.filter(pk__in=ids, status__in=FINISHED_STATUSES).count()
    shown = TaskModel.objects.filter(pk__in=list(ids[:SHOWN])).only("pk", "func_name", "status")
    by_id = {row.pk: row for row in shown}
    items = format_html_join(
        "",
        '<li><a href="{}">#{}</a> {} {}</li>',
        (
            (
                reverse("admin:firefly_admin_task_change", args=[pk]),
                pk,
                by_id[pk].func_name,
                display.badge(by_id[pk].status),
            )
            for pk in ids[:SHOWN]
            if pk in by_id
        ),
    )
    # format_html escapes its arguments to text first: numbers are formatted before.
    finished = _("%(done)s of %(total)s done") % {
        "done": display.count(done),
        "total": display.count(total),
    }
    more = ""
    if total > SHOWN:
        more = format_html(
            "<li>{}</li>", _("and %(count)s more") % {"count": display.count(total - SHOWN)}
        )
    return format_html('<p>{}</p><ul class="ff-members">{}{}</ul>', finished, items, more)
