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
        # Where Django's Tasks framework is installed, rows enqueued through a FireflyBackend
        # alias can run (resolving one checks its row's alias).
        try:
            from firefly_tasks.dep14 import running
        except ImportError:
            return  # no framework: check firefly_tasks.E103 says so if TASKS needs it
        registry.framework_resolver = running.resolve_framework_task
