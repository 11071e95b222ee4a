"""The intermediate pages of the rename and delete actions, and the typed confirmation that a
large delete asks for.

A page shows the selection as the action will see it (bounded, see ``selection.py``) with its
count, "10,000+" past the cap, and a button that counts exactly; then what the action asks.
Its form posts the selection back unchanged, bound included.

Deleting more than ``FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE`` tasks asks the operator to type how
many: the selection is counted exactly first (stopped after ``FIREFLY_ADMIN_COUNT_TIMEOUT``),
and counted again when the form comes back, so the number typed is checked against the tasks
that would be deleted then. When the database stopped the count, there is no number to type:
the page asks for the words "delete all" instead.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from firefly_admin.conf import settings
from firefly_admin.counting import COUNT_VAR, EXACT, Count
from firefly_admin.display import seconds_text
from firefly_admin.selection import BOUND_VAR, Selection

SAMPLE_SIZE = 10
TYPED_VAR = "typed_count"
# What to type when counting was stopped, in the page's language (TypedConfirmation.for_delete).
DELETE_ALL = gettext_noop("delete all")

# What people put between thousands: "10,050", "10 050", "10.050", "10'050", "10_050".
SEPARATORS = re.compile(r"[\s,._'\u2019]")


def wants_exact_count(request: HttpRequest) -> bool:
    return request.POST.get(COUNT_VAR) == EXACT


@dataclasses.dataclass(frozen=True)
class TypedConfirmation:
    """What the operator must type before a delete goes ahead (``answer``)."""

    answer: str

    @classmethod
    def for_delete(cls, count: Count) -> TypedConfirmation | None:
        """The number of tasks, when there are more than the setting allows without typing;
        "delete all" when counting was stopped (there are more than ``count.value``, but how
        many is unknown); ``None`` when nothing needs typing."""
        if count.stopped_after is not None:
            return cls(_(DELETE_ALL))
        if count.value <= settings.CONFIRM_DELETE_ABOVE:
            return None
        return cls(count.number)

    def error(self, post: Mapping[str, str]) -> str | None:
        """Why the posted form does not confirm, or ``None`` when it does."""
        typed = post.get(TYPED_VAR, "")
        if not typed.strip():
            return _("Type %(answer)s in the box to confirm the delete.") % {"answer": self.answer}
        if _normalised(typed) != _normalised(self.answer):
            return _(
                "Nothing was deleted: you typed “%(typed)s”, not %(answer)s. Check the "
                "selection above and type it again."
            ) % {"typed": typed[:40], "answer": self.answer}
        return None


def _normalised(text: str) -> str:
    words = " ".join(text.lower().split())
    digits = SEPARATORS.sub("", words)
    return digits if digits.isdigit() else words


def confirmation_page(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    selection: Selection,
    count: Count,
    action: str,
    title: str,
    template: str,
    **extra: Any,
) -> TemplateResponse:
    """An action's intermediate page (``firefly_admin/actions/<template>``): it shows the
    selection, and posts it back unchanged to ``action`` with what the page asked for."""
    sample = selection.rows.order_by("-pk").only("pk", "func_name", "status", "queue")
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": modeladmin.opts,
        "action": action,
        "count": count,
        "newer": selection.newer(),
        "sample": sample[:SAMPLE_SIZE],
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": selection.select_across,
        "up_to_id": selection.up_to_id,
        "bound_var": BOUND_VAR,
        "from_object": request.POST.get("_from_object", ""),
        "back_url": back_url(modeladmin, request),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "count_var": COUNT_VAR,
        "exact": EXACT,
        "typed_var": TYPED_VAR,
        "count_timeout": seconds_text(settings.COUNT_TIMEOUT),
        **extra,
    }
    return TemplateResponse(request, f"firefly_admin/actions/{template}", context)


def back_url(modeladmin: admin.ModelAdmin[Any], request: HttpRequest) -> str:
    """Where the page's way back leads: to the task's page the action was started from, or to
    the list as it was, filters and search included (the admin's preserved filters)."""
    opts = modeladmin.opts
    name = f"{modeladmin.admin_site.name}:{opts.app_label}_{opts.model_name}"
    from_object = request.POST.get("_from_object", "")
    if from_object.isdigit():
        return reverse(f"{name}_change", args=[from_object])
    preserved: dict[str, Any] = {
        "opts": opts,
        "preserved_filters": modeladmin.get_preserved_filters(request),
    }
    return add_preserved_filters(preserved, reverse(f"{name}_changelist"))
