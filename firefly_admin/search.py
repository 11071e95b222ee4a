"""The task list's search box: a task id, a tag, error text, an argument's value, or part of a
task name.

- ``1234`` or ``#1234``: that task (one index lookup);
- ``tag:NAME``: the tasks with that tag (one index lookup);
- ``error:TEXT``: tasks whose stored error contains TEXT, case-insensitively;
- ``args.KEY:VALUE`` (as Oban Web's): tasks called with the keyword argument KEY equal to VALUE,
  ``args.0:VALUE`` the first positional argument, ``args.customer.id:7`` a key inside one (a
  VALUE that reads as JSON, ``7``, ``true``, ``"7"``, is compared as such, and a number also
  as its text); JSON-serialized rows only, and never a key ``FIREFLY_ADMIN_HIDDEN_ARGS`` masks
  (a search would reveal the value a preview hides);
- anything else: part of a task name (the admin's own search).

Error text and arguments have no index, so those two searches read only the newest
``FIREFLY_ADMIN_SEARCH_ROWS`` tasks (an id range on the primary key), whatever else narrows
the list: a search that costs the same on a table of a hundred million rows.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Case, F, JSONField, Max, Q, QuerySet, Value, When
from django.db.models.functions import Cast

from firefly_admin.conf import settings
from firefly_admin.pagination import task_id

# Where a call's arguments sit in the stored JSON: ``(args, kwargs)`` as a tagged tuple,
# ``{"__firefly__": "tuple", "v": [[...], {...}]}``, the positional arguments a list, or a
# tagged tuple themselves (``{"__firefly__": "tuple", "v": [...]}``) when scheduled as one.
POSITIONAL = (("v", "0"), ("v", "0", "v"))
KEYWORD = (("v", "1"),)


def bounded(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """``queryset`` within the newest ``FIREFLY_ADMIN_SEARCH_ROWS`` ids of the table."""
    newest = queryset.model._default_manager.using(queryset.db).aggregate(top=Max("pk"))["top"]
    if newest is None:
        return queryset
    return queryset.filter(pk__gt=newest - settings.SEARCH_ROWS)


def parse_value(text: str) -> list[Any]:
    """The JSON values an ``args.KEY:VALUE`` search matches: VALUE read as JSON (a number
    also as its text, since a form posts numbers as strings), else VALUE as a string."""
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return [value]
    if isinstance(value, int | float):
        return [value, text]
    return [text]  # an object or a list: compared as the text typed


def argument_filter(path: str, text: str) -> Q | None:
    """The lookup of ``args.PATH:TEXT`` on the ``call`` annotation, None for an empty path."""
    keys = [key for key in path.split(".") if key]
    if not keys:
        return None
    if set(keys) & set(settings.HIDDEN_ARGS):
        return Q(pk__in=[])  # a masked value is never searched: it would reveal it
    matches = Q()
    for prefix in POSITIONAL if keys[0].isdigit() else KEYWORD:
        lookup = "__".join(("call", *prefix, *keys))
        for value in parse_value(text):
            matches |= Q(**{lookup: value})
    return matches


def with_call(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """``queryset`` with each JSON row's stored call as a JSON value (``call``), NULL for a
    pickled one (never cast: its text is not JSON)."""
    annotated: QuerySet[Any] = queryset.annotate(
        call=Case(
            When(serializer="json", then=Cast(F("params_data"), JSONField())),
            default=Value(None, output_field=JSONField()),
            output_field=JSONField(),
        )
    )
    return annotated


def search(queryset: QuerySet[Any], term: str) -> QuerySet[Any] | None:
    """The tasks ``term`` finds, or None for a plain search of task names."""
    term = term.strip()
    if term.removeprefix("#").isdigit():
        pk = task_id(term.removeprefix("#"))
        return queryset.none() if pk is None else queryset.filter(pk=pk)
    kind, colon, rest = term.partition(":")
    rest = rest.strip()
    if not colon or not rest:
        return None
    if kind == "tag":
        return queryset.filter(tag_set__tag=rest)
    if kind == "error":
        return bounded(queryset).filter(error__icontains=rest)
    if kind.startswith("args."):
        matches = argument_filter(kind.removeprefix("args."), rest)
        if matches is None:
            return None
        return with_call(bounded(queryset)).filter(matches)
    return None
