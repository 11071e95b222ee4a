"""Django 6's ``ContentSecurityPolicyMiddleware``, reduced to what the tests use, for Django 5.2
(which has none): ``SECURE_CSP`` read per response, as a ``Content-Security-Policy`` header.
On Django 6 the tests use Django's own (tests/settings.py)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

HEADER = "Content-Security-Policy"
SELF = "'self'"  # django.utils.csp.CSP.SELF on Django 6


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        policy: dict[str, list[str]] = getattr(settings, "SECURE_CSP", {})
        if policy and HEADER not in response:
            response[HEADER] = "; ".join(
                f"{directive} {' '.join(values)}" for directive, values in policy.items()
            )
        return response
