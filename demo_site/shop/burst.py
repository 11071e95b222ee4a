"""The burst of demo tasks that ``schedule_demo_tasks`` and the demo page's button schedule."""

from __future__ import annotations

import datetime

from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from demo_site.shop import tasks
from firefly_tasks.models import TaskModel

REMINDER_DELAY = datetime.timedelta(seconds=30)


def schedule_burst() -> list[TaskModel]:
    """Schedule one of each demo task, and many quick ones; return the rows in that order.

    One transaction: the consumer sees the whole burst or none of it.
    """
    with transaction.atomic():
        rows = tasks.add.schedule_many([(i, i) for i in range(20)])
        rows += [tasks.place_order.schedule(order_id) for order_id in range(1, 6)]
        rows += tasks.send_newsletter.schedule_many([(i,) for i in range(1, 11)])
        rows.append(tasks.sync_inventory.schedule("SKU-1"))
        rows.append(tasks.charge_card.schedule(1))
        rows.append(tasks.build_sales_report.schedule(seconds=3))
        # An async task is scheduled with `await task.schedule(...)`; from sync code, like this.
        rows += [async_to_sync(tasks.fetch_exchange_rate.schedule)(c) for c in ("EUR", "GBP")]
        rows.append(tasks.send_cart_reminder.schedule(7, eta=timezone.now() + REMINDER_DELAY))
    return rows
