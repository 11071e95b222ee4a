from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from demo_site.shop.setup import setup_demo


class Command(BaseCommand):
    help = "Migrate the demo database and create the demo superuser (safe to repeat)."

    # The checks may open the database (Django 6.1's model checks do), whose SQLite folder
    # does not exist on the first run: setup_demo() creates it, then `migrate` runs them.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        setup_demo(self.stdout)
