from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from demo_site.shop.setup import setup_demo


class Command(BaseCommand):
    help = "Migrate the demo database and create the demo superuser (safe to repeat)."

    def handle(self, *args: Any, **options: Any) -> None:
        setup_demo(self.stdout)
