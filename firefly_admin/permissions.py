"""Who may do what on the dashboard's admin pages.

The engine writes every row the admin shows, so nobody adds or edits one by hand. Each action
needs a permission of its own (``firefly_admin.requeue_task`` and friends, declared on the
proxies in ``models.py``): Django's admin asks ``has_<name>_permission`` for an action declared
with ``permissions=["<name>"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyRows:
    """A ``ModelAdmin`` mixin for the engine's tables: their rows are never added or edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def permission(codename: str) -> Callable[[admin.ModelAdmin[Any], HttpRequest], bool]:
    """A ``has_<name>_permission`` method: whether the user holds ``<app_label>.<codename>``."""

    def has_permission(self: admin.ModelAdmin[Any], request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    has_permission.__doc__ = f"Whether the user holds the {codename} permission."
    return has_permission
