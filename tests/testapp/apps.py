from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class TestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A consumer started with this setting plays another release of Firefly, for the
        # rolling-deploy tests: one whose engine version is older or newer than this code's.
        version = getattr(settings, "TESTAPP_ENGINE_VERSION", None)
        if version is not None:
            from firefly_tasks import states

            states.ENGINE_VERSION = int(version)
