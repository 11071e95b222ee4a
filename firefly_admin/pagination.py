"""Counting that stays cheap on big tables: counts stop at a limit."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.core.paginator import Paginator
from django.db.models import QuerySet

COUNT_LIMIT = 10_000


def capped_count(queryset: QuerySet[Any], limit: int = COUNT_LIMIT) -> tuple[int, bool]:
    """How many rows ``queryset`` holds, counting no further than ``limit``.

    Returns ``(count, capped)``; when capped, there are more than ``limit`` rows. The database
    counts a ``LIMIT``-ed subquery, so it reads at most ``limit + 1`` index entries.
    """
    count = queryset.order_by().values("pk")[: limit + 1].count()
    return min(count, limit), count > limit


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
        count, self.capped = capped_count(self.object_list, self.count_limit)
        return count

    capped = False
