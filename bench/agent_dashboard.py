"""The agent's ``dashboard`` command: every page of the system's admin, discovered at run time,
timed in-process with the number of queries each makes."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

from bench.agent_adapters import SYSTEM, Adapter, queue_connection

Page = tuple[str, str, dict[str, str], list[tuple[str, str]]]


def admin_pages(a: Adapter, request_factory: Any, user: Any) -> list[Page]:
    """Every GET page of the system's admin, discovered at run time: each changelist with
    every choice of every list filter (and all filters at once), a search, a deep page, the
    change page of a task, and every extra URL the ModelAdmins add (e.g. Firefly's
    dashboard), each with the changelist's filters too. Each entry: name, URL, headers, and
    the filter variants to time if the page answers GET."""
    from urllib.parse import parse_qsl, urlencode

    from django.contrib import admin
    from django.urls import URLPattern, reverse

    pages: list[Page] = []
    site = admin.site
    for model, model_admin in site._registry.items():
        if model._meta.app_label not in a.admin_apps:
            continue
        info = f"{site.name}:{model._meta.app_label}_{model._meta.model_name}"
        changelist = reverse(f"{info}_changelist")
        label = model._meta.model_name
        request = request_factory.get(changelist)
        request.user = user
        variants: list[tuple[str, str]] = []
        combined: dict[str, str] = {}
        try:
            cl = model_admin.get_changelist_instance(request)
            for spec in cl.filter_specs:
                last = None
                for choice in spec.choices(cl):
                    query = choice.get("query_string", "?")
                    if query in ("?", "") or any(query == q for _, q in variants):
                        continue
                    title = getattr(spec, "title", "filter")
                    variants.append((f"{title} = {choice['display']}", query))
                    last = query
                if last:
                    combined.update(parse_qsl(last.lstrip("?")))
        except Exception as exc:  # report it, and time the rest
            pages.append((f"{label} changelist filters: {exc!r}", "", {}, []))
        if len(combined) > 1:
            variants.append(("all filters at once", "?" + urlencode(combined)))
        # The deepest page: Firefly's task list pages by cursor (the oldest page), others by
        # number.
        keyset = SYSTEM == "firefly" and model._meta.model_name == "task"
        own = [("oldest page", "?after=0") if keyset else ("page 200", "?p=200")]
        if model_admin.search_fields:
            own.insert(0, ("search 'noop'", "?q=noop"))
        pages.append((f"{label} changelist", changelist, {}, [*variants, *own]))
        obj = model._default_manager.order_by("-pk").first()
        if obj is not None:
            pages.append(
                (f"{label} change page (newest)", reverse(f"{info}_change", args=[obj.pk]), {}, [])
            )
        standard = {"changelist", "add", "history", "delete", "change", "autocomplete"}
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        for pattern in model_admin.get_urls():
            if not isinstance(pattern, URLPattern) or not pattern.name:
                continue
            suffix = pattern.name.removeprefix(prefix)
            if suffix in standard or pattern.pattern.regex.groups:
                continue
            url = reverse(f"{site.name}:{pattern.name}")
            if suffix.endswith("pause"):  # Firefly's pause page: which queue, and why
                pages.append((f"{label} {suffix}", f"{url}?queue=default", {}, []))
                continue
            pages.append((f"{label} {suffix}", url, {}, variants))
    return pages


def htmx_regions(html: str) -> list[str]:
    """The ids of the live regions of a page: elements that reload themselves with hx-get,
    on a timer (``every``) or on the refresh event a page's script sends (Firefly's
    ``ff:refresh``)."""
    ids = []
    for tag in re.findall(r"<[a-zA-Z][^>]*\bhx-get=[^>]*>", html):
        m = re.search(r'\bid="([^"]+)"', tag)
        trigger = re.search(r'\bhx-trigger="([^"]*)"', tag)
        if m and trigger and ("every" in trigger.group(1) or "refresh" in trigger.group(1)):
            ids.append(m.group(1))
    return ids


def cmd_dashboard(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    """Time every admin page in-process with the test client, logged in as a superuser, with
    the number of queries each makes (CaptureQueriesContext)."""
    from django.contrib.auth import get_user_model

    connection = queue_connection()
    from django.test import Client, RequestFactory
    from django.test.utils import CaptureQueriesContext

    # No setup_test_environment(): its template instrumentation would add to every page.
    repeats = args.get("repeats", 3)
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first() or (
        user_model.objects.create_superuser("bench", "bench@example.com", "bench")
    )
    client = Client()
    client.force_login(user)
    pages = admin_pages(a, RequestFactory(), user)
    results = []
    i = 0
    while i < len(pages):
        name, url, headers, variants = pages[i]
        i += 1
        if not url:
            results.append({"page": name, "url": url, "error": "discovery failed"})
            continue
        response = client.get(url, headers=headers)  # warm-up: templates, caches
        if response.status_code == 405:
            continue  # POST only (e.g. pause/resume a queue): not a page
        times, queries = [], []
        for _ in range(repeats):
            with CaptureQueriesContext(connection) as ctx:
                t0 = time.perf_counter()
                response = client.get(url, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
            queries.append(len(ctx.captured_queries))
        status = response.status_code
        results.append(
            {
                "page": name,
                "url": url,
                "status": status,
                "ms": statistics.median(times),
                "queries": max(queries),
            }
        )
        if status != 200:
            continue
        extra: list[Page] = []
        if not headers:
            for region in htmx_regions(response.content.decode(errors="replace")):
                extra.append((f"{name} region #{region} (htmx)", url,
                              {"HX-Request": "true", "HX-Target": region}, []))  # fmt: skip
        extra += [(f"{name}: {title}", url + query, headers, []) for title, query in variants]
        pages[i:i] = extra
    return {"pages": results}
