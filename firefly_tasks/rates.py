"""Rate limits: at most N starts a period (``rate_limit="100/m"``) for one ``rate_key``, and
for a queue (``FIREFLY_QUEUES``' ``"rate"``), across every consumer (docs/tasks.md, "Rate
limits").

Each key has a token bucket (``RateBucket``) holding at most N tokens, refilled at N a period.
A claim (in its transaction, holding the bucket's row) admits as many of the key's claimed tasks
as there are whole tokens, and takes a token each; it undoes the claims of the others
(``throttle``: back to ``created``, no attempt spent) and gives each a start time of its own,
one token apart after the latest one given (``horizon``), so that a backlog waits in the future
instead of ahead of other work, and comes due at the rate.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any

from django.db.models import F

from firefly_tasks.conf import settings
from firefly_tasks.options import parse_rate
from firefly_tasks.slots import Slots, hold
from firefly_tasks.states import Event

QUEUE_PREFIX = "queue:"


@functools.cache
def rate(text: str) -> tuple[int, float]:
    """``"100/m"`` as (its capacity: 100 tokens, its refill: tokens a second)."""
    count, period = parse_rate(text)
    return count, count / period


class RateLimits(Slots):
    """The task queryset's rate limits."""

    def _throttle(self, rows: list[Any], now: datetime.datetime) -> list[Any]:
        """Of rows just claimed (inside the claim's transaction), those their queues' and
        keys' tokens admit; the others are throttled to later start times."""
        queue_rates = settings.QUEUE_RATES
        groups: dict[tuple[str, str], list[Any]] = {}
        for row in rows:
            if row.queue in queue_rates:
                groups.setdefault((QUEUE_PREFIX + row.queue, queue_rates[row.queue]), []).append(
                    row
                )
            if row.rate_key is not None and row.rate_limit:
                groups.setdefault((row.rate_key, row.rate_limit), []).append(row)
        if not groups:
            return rows
        throttled: set[Any] = set()
        for key, limit in sorted(groups):  # buckets locked in one order
            group = [row for row in groups[key, limit] if row.pk not in throttled]
            group.sort(key=lambda r: (-r.priority, r.not_before, r.pk))
            later = self._take_tokens(key, limit, group, now)
            throttled.update(row.pk for row, _ in later)
            for row, start in later:
                self._all().filter(pk=row.pk)._move(
                    Event.THROTTLE,
                    attempt=F("attempt") - 1,
                    worker=None,
                    started=None,
                    not_before=start,
                )
        return [row for row in rows if row.pk not in throttled]

    def _take_tokens(
        self, key: str, limit: str, group: list[Any], now: datetime.datetime
    ) -> list[tuple[Any, datetime.datetime]]:
        """Take a token for each row of ``group`` that has one; the others with their start
        times, one token apart."""
        capacity, per_second = rate(limit)
        model = self.model._meta.apps.get_model("firefly_tasks", "RateBucket")
        buckets = model._default_manager.using(self.db)
        hold(model, self.db, {"key": key, "tokens": capacity, "updated": now})
        bucket = buckets.get(key=key)
        # The bucket's clock never goes back: a claim's time may be older than the last
        # claim's, which waited less for the row (that would refill the same time twice).
        now = max(now, bucket.updated)
        elapsed = (now - bucket.updated).total_seconds()
        tokens = min(float(capacity), bucket.tokens + elapsed * per_second)
        admitted = min(int(tokens), len(group))
        tokens -= admitted
        interval = datetime.timedelta(seconds=1 / per_second)
        start = now + datetime.timedelta(seconds=(1 - tokens) / per_second)
        if bucket.horizon is not None and bucket.horizon + interval > start:
            start = bucket.horizon + interval
        later = []
        for row in group[admitted:]:
            later.append((row, start))
            start += interval
        horizon = later[-1][1] if later else bucket.horizon
        buckets.filter(key=key).update(tokens=tokens, updated=now, horizon=horizon)
        return later
