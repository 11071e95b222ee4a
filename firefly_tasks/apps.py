from __future__ import annotations

from django.apps import AppConfig


class FireflyTasksConfig(AppConfig):
    name = "firefly_tasks"
    verbose_name = "Firefly tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from firefly_tasks import checks  # noqa: F401  (registers the system checks)
        from firefly_tasks.registry import registry

        registry.autodiscover()
