"""Periodic schedules in the Django admin: create, edit, enable and disable them, run one now,
and see their next ticks, last tick and last runs. Schedules declared in code
(``FIREFLY_SCHEDULES``, ``@periodic``) are shown read-only, marked as such: the next deploy
would undo an edit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext

from firefly_admin import display
from firefly_admin.history import log_entry
from firefly_admin.models import Schedule
from firefly_admin.permissions import permission
from firefly_admin.schedule_form import ScheduleForm, arguments_text
from firefly_tasks import database, schedules, ticks
from firefly_tasks.clock import database_now
from firefly_tasks.exceptions import FireflyError
from firefly_tasks.models import ScheduleModel, TaskModel
from firefly_tasks.states import ScheduleSource

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[ScheduleModel]  # generic only to the type checker
else:
    _ModelAdmin = admin.ModelAdmin

# Upcoming ticks and last runs shown on a schedule's page.
SHOWN = 5


class ScheduleAdmin(_ModelAdmin):
    form = ScheduleForm
    # What an operator looks for first comes first: the admin scrolls a wide table sideways.
    list_display = ("name", "timing", "next_at", "problem_text", "enabled", "source_badge",
                    "func_name", "runs_link")  # fmt: skip
    list_filter = ("enabled", "source")
    search_fields = ("name", "func_name")
    ordering = ("name",)
    actions = ("run_now", "enable", "disable")
    readonly_fields = ("source_badge", "next_at", "upcoming", "last_at", "last_runs",
                       "problem_text", "arguments")  # fmt: skip

    class Media:
        css = {"all": ("firefly_admin/firefly.css",)}

    has_run_schedule_permission = permission("run_schedule")

    # Settings schedules are read-only ------------------------------------------------------

    def _declared(self, obj: ScheduleModel | None) -> bool:
        return obj is not None and obj.source == ScheduleSource.SETTINGS

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._declared(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._declared(obj) and super().has_delete_permission(request, obj)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return list(self._editable())
        if not self.has_change_permission(request, obj):
            return self.get_readonly_fields(request, obj)
        return [*self._editable(), *self.readonly_fields]

    def _editable(self) -> tuple[str, ...]:
        return ("name", "func_name", "cron", "every_seconds", "time_zone", "args", "kwargs",
                "queue", "priority", "overlap", "missed", "enabled")  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and not self.has_change_permission(request, obj):
            return ["name", "func_name", "timing", "queue", "priority", "overlap", "missed",
                    "enabled", *self.readonly_fields]  # fmt: skip
        return self.readonly_fields if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Written by the engine's rules: the next tick stands unless the timing changed."""
        with database.atomic():
            stored = (
                ScheduleModel.objects.select_for_update().get(pk=obj.pk)
                if change
                else ScheduleModel(name=form.spec.name)
            )
            schedules.write(stored, form.spec, database_now(), source=ScheduleSource.ADMIN)
        obj.pk, obj.next_tick = stored.pk, stored.next_tick

    # Columns -------------------------------------------------------------------------------

    @admin.display(description=gettext_lazy("when"))
    def timing(self, obj: ScheduleModel) -> str:
        if obj.cron:
            return f"{obj.cron} ({obj.time_zone or 'TIME_ZONE'})"
        every = obj.every
        shown = (
            display.duration(every) if every and every.total_seconds() < 10 else display.age(every)
        )
        return _("every %(interval)s") % {"interval": shown}

    @admin.display(description=gettext_lazy("source"), ordering="source")
    def source_badge(self, obj: ScheduleModel) -> SafeString:
        if obj.source == ScheduleSource.SETTINGS:
            return display.badge("paused", _("in code (read-only)"))
        return display.badge("created", pgettext("schedule source", "admin"))

    @admin.display(description=gettext_lazy("next tick"), ordering="next_tick")
    def next_at(self, obj: ScheduleModel) -> SafeString | str:
        return display.moment(obj.next_tick) if obj.enabled else _("— (disabled)")

    @admin.display(description=gettext_lazy("last tick"), ordering="last_tick")
    def last_at(self, obj: ScheduleModel) -> SafeString | str:
        return display.moment(obj.last_tick)

    @admin.display(description=gettext_lazy("problem"))
    def problem_text(self, obj: ScheduleModel) -> str:
        return obj.problem or "—"

    @admin.display(description=gettext_lazy("arguments"))
    def arguments(self, obj: ScheduleModel) -> str:
        return arguments_text(obj)

    @admin.display(description=gettext_lazy("upcoming ticks"))
    def upcoming(self, obj: ScheduleModel) -> SafeString | str:
        if not obj.enabled:
            return _("— (disabled)")
        try:
            after = ticks.cadence_of(obj).upcoming(obj.next_tick, SHOWN - 1)
        except FireflyError as exc:
            return str(exc)
        moments = [obj.next_tick, *after]
        return format_html_join(", ", "{}", ((display.moment(t),) for t in moments))

    @admin.display(description=gettext_lazy("last runs"))
    def last_runs(self, obj: ScheduleModel) -> SafeString | str:
        rows = TaskModel.objects.filter(schedule=obj.name).order_by("-id")[:SHOWN]
        if not rows:
            return "—"
        return format_html_join(
            " ",
            '<a href="{}">#{} {}</a>',
            (
                (reverse(f"{self.admin_site.name}:firefly_admin_task_change", args=[row.pk]),
                 row.pk, display.badge(row.status))
                for row in rows
            ),
        )  # fmt: skip

    @admin.display(description=gettext_lazy("runs"))
    def runs_link(self, obj: ScheduleModel) -> SafeString:
        url = reverse(f"{self.admin_site.name}:firefly_admin_task_changelist")
        return format_html('<a href="{}?schedule={}">{}</a>', url, obj.name, _("Its tasks"))

    # Actions (POST, CSRF-checked, permission-gated by Django's admin) --------------------------

    @admin.action(
        description=gettext_lazy("Run the selected schedules now"), permissions=["run_schedule"]
    )
    def run_now(self, request: HttpRequest, queryset: QuerySet[ScheduleModel]) -> None:
        done, failed = 0, []
        for row in queryset.order_by("name"):
            try:
                with database.atomic():
                    task = ticks.run_now(row)
                    message = f"Ran now: task #{task.pk}"
                    log_entry(request, Schedule, str(row.pk), row.name, message).save()
            except FireflyError as exc:
                failed.append(f"{row.name}: {exc}")
                continue
            done += 1
        enqueued = ngettext("Enqueued %(count)s run.", "Enqueued %(count)s runs.", done)
        self.message_user(request, enqueued % {"count": done}, messages.SUCCESS)
        for text in failed:
            self.message_user(request, _("Not run: %(reason)s") % {"reason": text}, messages.ERROR)

    @admin.action(description=gettext_lazy("Enable the selected schedules"), permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[ScheduleModel]) -> None:
        self._switch(request, queryset, enabled=True)

    @admin.action(
        description=gettext_lazy("Disable the selected schedules"), permissions=["change"]
    )
    def disable(self, request: HttpRequest, queryset: QuerySet[ScheduleModel]) -> None:
        self._switch(request, queryset, enabled=False)

    def _switch(
        self, request: HttpRequest, queryset: QuerySet[ScheduleModel], *, enabled: bool
    ) -> None:
        """Enable or disable admin-made schedules (declared ones follow their code). One that is
        enabled again ticks from now on: the ticks it missed while disabled never run."""
        changed = skipped = 0
        now = database_now()
        with database.atomic():
            for row in queryset.select_for_update().order_by("name"):
                if row.source == ScheduleSource.SETTINGS or row.enabled == enabled:
                    skipped += 1
                    continue
                if enabled:
                    try:
                        row.next_tick = ticks.cadence_of(row).next_after(now)
                    except FireflyError:
                        row.next_tick = now  # the next pass says what is wrong with it
                row.enabled, row.updated = enabled, now
                row.save(update_fields=["enabled", "next_tick", "updated"])
                verb = "Enabled" if enabled else "Disabled"
                log_entry(request, Schedule, str(row.pk), row.name, verb).save()
                changed += 1
        if enabled:
            switched = ngettext(
                "Enabled %(count)s schedule", "Enabled %(count)s schedules", changed
            )
        else:
            switched = ngettext(
                "Disabled %(count)s schedule", "Disabled %(count)s schedules", changed
            )
        skipped_text = ngettext(
            "%(switched)s; skipped %(skipped)s (declared in code, or already so).",
            "%(switched)s; skipped %(skipped)s (declared in code, or already so).",
            skipped,
        )
        self.message_user(
            request, skipped_text % {"switched": switched % {"count": changed}, "skipped": skipped}
        )
