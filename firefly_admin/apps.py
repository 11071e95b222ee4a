from __future__ import annotations

from django.apps import AppConfig


class FireflyAdminConfig(AppConfig):
    name = "firefly_admin"
    verbose_name = "Firefly"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from firefly_admin import checks  # noqa: F401  (registers the system checks)
