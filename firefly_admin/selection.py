"""What an action acts on: the tasks selected, bounded to those the operator was shown.

"Select all" (``select_across``) stands for every task matching the list's filters, and new
tasks keep arriving: a delete confirmed for 4,000 tasks must not delete the 50 that matched
by the time of the click. So the task list carries the highest task id of the moment it was
read (``up_to_id``, see ``changelist.py``), every confirmation page passes it on unchanged, and
the action only touches the matching tasks up to that id. Tasks scheduled afterwards are left
alone, and counted ("50 newer matching tasks left alone").

The bound is set once, when the list is shown, and never widens: a confirmation page counts
the bounded selection, so the number an operator confirms is the number of tasks acted on
(less those skipped because their state changed meanwhile). A "select all" without a bound
(a page of an older version, a hand-made request) is refused rather than taken to mean every
task at the time of the click, which is the very race the bound closes. Explicitly ticked
tasks are their own bound: their ids are what the operator saw.

The bound is an ordinary form field, validated as a task id, not signed: it narrows what an
operator holding the action's permission may do anyway, so forging it gains nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _

from firefly_admin.counting import Count, capped_count, exact_count
from firefly_admin.pagination import task_id

BOUND_VAR = "up_to_id"


class RefusedSelection(Exception):
    """The request's selection cannot be trusted to be what the operator saw."""


@dataclasses.dataclass(frozen=True)
class Selection:
    """The tasks an action acts on (``rows``), and, for "select all", the bound and the
    matching tasks beyond it."""

    rows: QuerySet[Any]
    select_across: bool
    up_to_id: int | None
    matching: QuerySet[Any]

    @classmethod
    def from_request(cls, request: HttpRequest, queryset: QuerySet[Any]) -> Selection:
        """The selection of an action request; ``queryset`` is what the admin selected (every
        match with ``select_across``). Raises :class:`RefusedSelection`."""
        # Read as the admin's action form reads it, so that both agree on what was selected.
        select_across = forms.BooleanField(required=False).to_python(
            request.POST.get("select_across")
        )
        up_to_id = parse_bound(request.POST.get(BOUND_VAR))
        if select_across and up_to_id is None:
            raise RefusedSelection(
                _(
                    "Nothing was changed: this “select all” does not say up to which task it "
                    "was shown (up_to_id). Reload the task list and select again."
                )
            )
        rows = queryset.filter(pk__lte=up_to_id) if select_across else queryset
        return cls(rows, select_across=select_across, up_to_id=up_to_id, matching=queryset)

    def count(self, *, exact: bool = False) -> Count:
        """How many tasks are selected; past the cap, exactly (within the count timeout)
        when ``exact``."""
        count = capped_count(self.rows)
        if exact and count.capped:
            count = exact_count(self.rows, count)
        return count

    def newer(self) -> Count:
        """How many matching tasks appeared after the bound: "select all" leaves them alone."""
        if not self.select_across or self.up_to_id is None:
            return Count(0)
        return capped_count(self.matching.filter(pk__gt=self.up_to_id))


def parse_bound(value: str | None) -> int | None:
    """The posted bound: ``None`` when absent, else a task id, else :class:`RefusedSelection`."""
    if value is None or value == "":
        return None
    bound = task_id(value)
    if bound is None:
        raise RefusedSelection(
            _(
                "Nothing was changed: the selection's bound (up_to_id=%(value)r) is not a "
                "task id. Reload the task list and select again."
            )
            % {"value": value[:30]}
        )
    return bound
