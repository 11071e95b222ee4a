"""Paging through big tables: keyset pages for the task list, capped counts for the others.

The task list pages by id (keyset, or cursor, pagination): a page is the rows just below an
id (``?before=``) or just above one (``?after=``), read by walking the primary key's index from
there, ``LIMIT`` one more row than the page holds to learn whether the walk goes on. No page
needs an ``OFFSET`` (which reads and throws away every row before the page) or a count, so the
last row of a million is as cheap to reach as the first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import Exists, QuerySet

from firefly_admin.counting import COUNT_LIMIT, capped_count

BEFORE_VAR = "before"
AFTER_VAR = "after"
CURSOR_VARS = (BEFORE_VAR, AFTER_VAR)

MAX_ID = 2**63 - 1  # the largest BigAutoField value


def task_id(value: str) -> int | None:
    """``value`` as a task id (ASCII digits, at most ``MAX_ID``), else ``None``."""
    # The length first: int() refuses strings of over 4,300 digits with a ValueError.
    if len(value) <= len(str(MAX_ID)) and value.isascii() and value.isdigit():
        number = int(value)
        return number if number <= MAX_ID else None
    return None


@dataclasses.dataclass(frozen=True)
class Cursor:
    """Where a page starts: just below the id ``before``, just above the id ``after``, or, with
    neither, at the start of the list's order."""

    before: int | None = None
    after: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Cursor:
        """The cursor of a query string; ``ValueError`` unless it is at most one id."""
        found = {name: query[name] for name in CURSOR_VARS if name in query}
        if len(found) > 1:
            raise ValueError("A page starts before an id or after one, not both.")
        for name, value in found.items():
            number = task_id(value)
            if number is None:
                raise ValueError(f"{name}={value[:30]!r} is not a task id.")
            return cls(**{name: number})
        return cls()

    @property
    def params(self) -> dict[str, str]:
        """The query string parameters that lead to this cursor's page."""
        if self.before is not None:
            return {BEFORE_VAR: str(self.before)}
        if self.after is not None:
            return {AFTER_VAR: str(self.after)}
        return {}


@dataclasses.dataclass(frozen=True)
class KeysetPage:
    """The rows of one page in the list's order, and the cursors of the pages around it;
    a cursor is ``None`` where there is no such page (the page is at that end)."""

    rows: list[Any]
    newest: Cursor | None
    newer: Cursor | None
    older: Cursor | None
    oldest: Cursor | None


def keyset_page(
    queryset: QuerySet[Any], cursor: Cursor, size: int, *, descending: bool, top: int
) -> KeysetPage:
    """The page of ``queryset`` at ``cursor``: ``size`` rows ordered by id, newest first when
    ``descending``, of those with an id up to ``top`` (the list's bound; the newest page of an
    ascending list starts just above it).

    One query, an index walk of at most ``size + 1`` matching rows (one row more tells
    whether the walk goes on); on a page reached by a cursor, it also asks whether any row
    lies on the cursor's other side, in an uncorrelated ``EXISTS`` that every database
    evaluates once, as one more index probe. Each of them has one range of ids: SQLite walks
    the index for one range and tests each row against a second one, so ``id <= top`` is
    merged into the cursor's range, never added beside it.
    """
    behind = None
    if cursor.before is not None:
        walk = queryset.filter(pk__lt=min(cursor.before, top + 1)).order_by("-pk")
        behind = queryset.filter(pk__gte=cursor.before, pk__lte=top)
    elif cursor.after is not None:
        walk = queryset.filter(pk__gt=cursor.after, pk__lte=top).order_by("pk")
        behind = queryset.filter(pk__lte=min(cursor.after, top))
    else:
        walk = queryset.filter(pk__lte=top).order_by("-pk" if descending else "pk")
    if behind is not None:
        walk = walk.annotate(ff_behind=Exists(behind))
    walking_down = cursor.before is not None or (cursor.after is None and descending)
    rows = list(walk[: size + 1])
    more_ahead = len(rows) > size
    rows = rows[:size]
    more_behind = bool(rows) and bool(getattr(rows[0], "ff_behind", False))
    more_older, more_newer = (
        (more_ahead, more_behind) if walking_down else (more_behind, more_ahead)
    )
    rows.sort(key=lambda row: row.pk, reverse=descending)
    ids = [row.pk for row in rows]
    # An empty page away from the start (a stale or made-up cursor) offers both ends.
    lost = not rows and cursor != Cursor()
    return KeysetPage(
        rows=rows,
        newest=(Cursor() if descending else Cursor(before=min(top + 1, MAX_ID)))
        if more_newer or lost
        else None,
        newer=Cursor(after=max(ids)) if more_newer else None,
        older=Cursor(before=min(ids)) if more_older else None,
        oldest=(Cursor(after=0) if descending else Cursor()) if more_older or lost else None,
    )


if TYPE_CHECKING:
    _Paginator = Paginator[Any]  # generic only to the type checker
else:
    _Paginator = Paginator


class CappedCountPaginator(_Paginator):
    """A paginator whose ``count`` stops at ``count_limit``; ``capped`` tells when it did."""

    count_limit = COUNT_LIMIT

    @cached_property
    def count(self) -> int:
        if not isinstance(self.object_list, QuerySet):
            return len(self.object_list)
        counted = capped_count(self.object_list, self.count_limit)
        self.capped = counted.capped
        return counted.value

    capped = False


class CappedCountChangeList(ChangeList):
    """The list of a ``CappedCountPaginator``: with ``show_full_result_count`` off, the admin
    has no total to compare with, and its search bar would offer "(Show all)" on a list that
    shows all already. It does only where a search or a filter narrows the list."""

    def get_results(self, request: Any) -> None:
        super().get_results(request)
        if not self.query.strip() and not self.get_filters_params():
            self.full_result_count = self.result_count
