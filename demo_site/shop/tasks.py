"""The demo's tasks: one of each kind Firefly runs.

Firefly imports every installed app's ``tasks`` module at start-up, in the web server and in
the consumer alike, so these are registered wherever they are scheduled or run.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from firefly_tasks import atask, current_task, periodic, task

# Queue "default" -------------------------------------------------------------------------------


@task()
def add(i: int, j: int) -> int:
    """Quick: done in a millisecond."""
    return i + j


@task(priority=10)
def place_order(order_id: int) -> str:
    """Schedules another task. That row commits together with this task's completion."""
    send_order_confirmation.schedule(order_id)
    return f"order {order_id} placed"


class InventoryUnavailable(Exception):
    pass


@task(max_retries=3, retry_delay=2, retry_backoff=True)
def sync_inventory(sku: str) -> str:
    """Fails on its first two attempts, then succeeds: retried after 2 s, then 4 s."""
    row = current_task()
    attempt = row.attempt if row else 1
    if attempt <= 2:
        raise InventoryUnavailable(f"inventory service timed out for {sku} (attempt {attempt})")
    return f"{sku} in stock (attempt {attempt})"


class PaymentDeclined(Exception):
    pass


@task(max_retries=1, retry_delay=5)
def charge_card(order_id: int) -> None:
    """Always fails: one retry after 5 s, then ``failed`` with its traceback in the admin."""
    raise PaymentDeclined(f"card declined for order {order_id}")


@periodic(cron="0 * * * *", kwargs={"seconds": 0.5})  # every hour, on the hour
@task(priority=-10, atomic=False)
def build_sales_report(seconds: float = 3.0) -> dict[str, object]:
    """Slow. ``atomic=False``: a long task should not hold a transaction open all along. It
    reports its progress, which the dashboard shows as a bar while it runs."""
    running = current_task()
    steps = 10
    for step in range(1, steps + 1):
        time.sleep(seconds / steps)
        if running is not None:
            running.set_progress(step, steps, message=f"{step * 10} % of the orders read")
    return {"orders": 42, "revenue": Decimal("1234.50"), "took_seconds": seconds}


@atask()
async def fetch_exchange_rate(currency: str) -> Decimal:
    """An ``async def`` task; the consumer runs it with ``async_to_sync``."""
    await asyncio.sleep(0.2)
    return {"EUR": Decimal("0.92"), "GBP": Decimal("0.79")}.get(currency, Decimal(1))


# Queue "emails": transactional mail first, newsletters when nothing else waits -----------------


@task(queue="emails", priority=50)
def send_order_confirmation(order_id: int) -> str:
    time.sleep(0.1)
    return f"confirmation sent for order {order_id}"


@task(queue="emails", priority=-50)
def send_newsletter(subscriber_id: int) -> str:
    time.sleep(0.1)
    return f"newsletter sent to subscriber {subscriber_id}"


@task(queue="emails")
def send_cart_reminder(cart_id: int) -> str:
    """Scheduled with an ``eta``: it waits in the queue until then."""
    return f"reminder sent for cart {cart_id}"


@periodic(every=60, overlap="skip")  # a minute apart, never two at once
@task()
def release_expired_reservations() -> int:
    """Periodic: the schedule's tick is what the task works from."""
    running = current_task()
    tick = running.scheduled_for if running else None
    return 0 if tick is None else tick.minute
