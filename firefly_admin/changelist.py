"""The task list's ``ChangeList``: keyset pages, a capped count, and the bound of "select all".

Every page of the list costs the same few index walks whatever the table holds (see
``pagination.keyset_page``): no ``OFFSET``, no count of the whole table. Its queries, besides
the admin's session and permission ones:

1. the highest task id (``MAX(id)``, read from the end of the primary key's index): the
   bound of everything the page shows, and of "select all", which acts on the matching tasks
   up to that id only (``selection.py``);
2. the page's rows (``LIMIT`` 51; on a page reached by a cursor, with an ``EXISTS`` probe
   of the cursor's other side);
3. the matching tasks up to the bound, counted up to ``COUNT_LIMIT`` (a ``LIMIT``-ed
   subquery, never a count of the whole table); or, when the operator asks with
   ``?count=exact``, counted exactly, in a statement the database stops after
   ``FIREFLY_ADMIN_COUNT_TIMEOUT`` (``counting.py``; one statement more to set that deadline).

So the rows, the count and "select all" describe the same tasks: those matching the filters
among the tasks that existed when the page was read.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import Max, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _

from firefly_admin.conf import settings
from firefly_admin.counting import (
    COUNT_VAR,
    EXACT,
    Count,
    capped_count,
    exact_count,
)
from firefly_admin.display import seconds_text
from firefly_admin.metrics import mark_executing, with_attempt_times
from firefly_admin.pagination import CURSOR_VARS, Cursor, KeysetPage, keyset_page

# Never loaded for the task list: they can be large.
HEAVY_FIELDS = ("params_data", "returned_data", "params_preview", "returned_preview", "traceback")


class TaskChangeList(ChangeList):
    cursor: Cursor
    count: Count  # how many tasks match, up to the bound
    up_to_id: int  # the highest task id when the list was read: "select all" stops there
    page: KeysetPage
    descending: bool = True

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        try:
            self.cursor = Cursor.from_query(request.GET)
        except ValueError as error:
            raise IncorrectLookupParameters(str(error)) from error  # the admin's "?e=1"
        # Only a page view counts exactly: an action posted from that page need not.
        self.count_exactly = request.method == "GET" and request.GET.get(COUNT_VAR) == EXACT
        super().__init__(request, *args, **kwargs)

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        # Like the admin's page number, the cursor and the count request say which page to
        # show and how, not which tasks: they are no filters, and links to other filters or
        # another search start again at the first page.
        for name in (*CURSOR_VARS, COUNT_VAR):
            self.params.pop(name, None)
            self.filter_params.pop(name, None)
        queryset = super().get_queryset(request, exclude_parameters).defer(*HEAVY_FIELDS)
        return with_attempt_times(queryset)

    def get_ordering(self, request: HttpRequest, queryset: QuerySet[Any]) -> list[Any]:
        """By id only, either way: the order keyset pages walk, on the primary key's index.
        Whatever else ``?o=`` names is ignored (only the id column offers sorting)."""
        for part in super().get_ordering(request, queryset):
            if isinstance(part, str) and part.lstrip("-") in ("id", "pk"):
                self.descending = part.startswith("-")
                break
        return ["-pk" if self.descending else "pk"]

    def get_results(self, request: HttpRequest) -> None:
        model = self.root_queryset.model
        top = model._default_manager.using(self.queryset.db).aggregate(top=Max("pk"))["top"]
        self.up_to_id = int(top or 0)
        self.page = keyset_page(
            self.queryset,
            self.cursor,
            self.list_per_page,
            descending=self.descending,
            top=self.up_to_id,
        )
        shown = self.queryset.filter(pk__lte=self.up_to_id)
        count = exact_count(shown) if self.count_exactly else capped_count(shown)
        self.count = count
        self.result_count = count.value
        self.result_list = self.page.rows
        mark_executing(self.result_list)
        self.paginator = None
        self.show_all = self.can_show_all = False
        self.multi_page = any((self.page.newer, self.page.older))
        self.show_admin_actions = True
        self.show_full_result_count = False
        # The admin's search bar repeats the count as a bare number ("10000 results") unless
        # it equals this: the pagination line says it instead, with its cap.
        self.full_result_count = count.value

    # What the templates show ---------------------------------------------------------------

    def page_links(self) -> list[tuple[str, str, str | None]]:
        """``(name, label, url)`` for the links to the pages around this one, in the list's
        order; ``url`` is ``None`` where the page is already at that end."""
        page = self.page
        links = [
            ("newest", _("« newest"), page.newest),
            ("newer", _("← newer"), page.newer),
            ("older", _("older →"), page.older),
            ("oldest", _("oldest »"), page.oldest),
        ]
        if not self.descending:
            links = [
                ("oldest", _("« oldest"), page.oldest),
                ("older", _("← older"), page.older),
                ("newer", _("newer →"), page.newer),
                ("newest", _("newest »"), page.newest),
            ]
        return [
            (name, label, None if cursor is None else self.get_query_string(cursor.params))
            for name, label, cursor in links
        ]

    def count_timeout(self) -> str:
        """How long an exact count may take, as the page says it."""
        return seconds_text(settings.COUNT_TIMEOUT)

    def count_exactly_url(self) -> str | None:
        """The link that counts every matching task, on a capped count; ``None`` otherwise."""
        if not self.count.capped:
            return None
        return self.get_query_string({**self.cursor.params, COUNT_VAR: EXACT})
