"""The admin's record of what staff did: Django's ``LogEntry`` rows, on the proxies' own content
types, which each task's timeline and the admin's history pages read."""

from __future__ import annotations

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model, QuerySet
from django.http import HttpRequest


def user_id(request: HttpRequest) -> int:
    """The acting user's id: admin views only ever run for a logged-in staff member."""
    pk = request.user.pk
    assert pk is not None
    return int(pk)


def log_entry(
    request: HttpRequest,
    model: type[Model],
    object_id: str,
    object_repr: str,
    change_message: str,
    *,
    action_flag: int = CHANGE,
    using: str | None = None,
) -> LogEntry:
    """An unsaved entry saying that the acting user changed an object of ``model``; the caller
    saves it, alone or in bulk with others."""
    content_type = ContentType.objects.db_manager(using).get_for_model(
        model, for_concrete_model=False
    )
    return LogEntry(
        user_id=user_id(request),
        content_type_id=content_type.pk,
        object_id=object_id,
        object_repr=object_repr[:200],
        action_flag=action_flag,
        change_message=change_message,
    )


def entries_for(model: type[Model], object_id: str) -> QuerySet[LogEntry]:
    """What staff did to one object of ``model``, with who did it."""
    content_type = ContentType.objects.get_for_model(model, for_concrete_model=False)
    return LogEntry.objects.filter(
        content_type_id=content_type.pk, object_id=object_id
    ).select_related("user")
