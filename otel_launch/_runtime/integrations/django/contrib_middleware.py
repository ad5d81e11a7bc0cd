"""Fixes to the contrib's Django middleware, for an app that runs ``DjangoInstrumentor().instrument()``
itself: its middleware then serves requests (ours steps aside), and records as otel-launch's does.
"""

from __future__ import annotations

import functools
from typing import Any


def apply() -> None:
    # Also when the app ran the instrumentor itself: the spans are the contrib's either way.
    from otel_launch._runtime import _compat

    if not _compat.usable("django-contrib-fixes"):
        return
    _skip_work_nothing_uses()
    _follow_http_conventions()


def _follow_http_conventions() -> None:
    """Two fixes to the contrib middleware, so server spans read as HTTP conventions say.

    - Routes start with "/": Django's ``path("orders/<int:pk>/")`` is served at
      ``/orders/<int:pk>/``; the contrib names the span ``GET orders/<int:pk>/`` and records
      the route that way in ``http.route`` and the duration metric (see
      :func:`_name_span_from_djangos_match`, which names the span once, slash included).
    - A 4xx response is not a server error: an ``Http404`` or ``PermissionDenied`` the view
      raises, and Django answers with 404 or 403, is not recorded as the span's exception
      (with status ERROR) as the contrib does; a 5xx keeps both.
    - The duration metric's ``http.target`` of a request with no route is its path, without the
      query the contrib keeps (secret values, a time series per query: see ``request.path_of``).
    """
    from opentelemetry.instrumentation.django.middleware.otel_middleware import _DjangoMiddleware

    if getattr(_DjangoMiddleware, "_otel_launch_conventions", False):
        return
    _DjangoMiddleware._otel_launch_conventions = True
    _name_span_from_djangos_match(_DjangoMiddleware)
    process_response = _DjangoMiddleware.process_response

    from otel_launch._runtime.integrations.django.request import path_of

    @functools.wraps(process_response)
    def client_errors_are_not_errors(self: Any, request: Any, response: Any) -> Any:
        if getattr(response, "status_code", 500) < 500:
            request.META.pop(self._environ_exception_key, None)
        metric_attributes = request.META.get(self._environ_duration_attr_key)
        target = metric_attributes.get("http.target") if metric_attributes else None
        if target:  # the duration metric's, read by process_response: the path alone (see path_of)
            metric_attributes["http.target"] = path_of(target)
        return process_response(self, request, response)

    _DjangoMiddleware.process_response = client_errors_are_not_errors


def _skip_work_nothing_uses() -> None:
    """Costs of the contrib middleware that buy nothing in the common case.

    Together they were most of what the middleware added to a trivial view (micro-benchmark
    of Django's WSGI handler, nothing exported: ~+390 us a request before, ~+160 us after).
    What it records is unchanged.

    - In each of its four methods it builds the request's absolute URL (``build_absolute_uri``:
      host validation, URL parsing and joining) only to match it against
      ``OTEL_PYTHON_DJANGO_EXCLUDED_URLS``. With no exclusions the answer is always "not
      excluded", so while those methods run (and only then: never while the app, another
      middleware or a user's hook runs) the request answers that call with "".
    - It reads the header-capture variables and scans every request and response header on
      each request, also when ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_*`` are unset.
    - It sets every request attribute on the span twice: once when starting it, then again
      one by one, together with those ``OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS`` names. The
      second pass now sets only the traced ones.
    """
    from opentelemetry.instrumentation.django.middleware import otel_middleware
    from opentelemetry.util.http import (
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
        get_custom_headers,
    )

    middleware = otel_middleware._DjangoMiddleware
    if getattr(middleware, "_otel_launch_skips_unused_work", False):
        return
    middleware._otel_launch_skips_unused_work = True
    if not get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST):
        otel_middleware.wsgi_collect_custom_request_headers_attributes = _no_headers
    if not get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE):
        otel_middleware.wsgi_collect_custom_response_headers_attributes = _no_headers
    otel_middleware.extract_attributes_from_object = _only_what_the_object_adds(
        otel_middleware.extract_attributes_from_object
    )
    if getattr(middleware._excluded_urls, "_excluded_urls", True):
        return  # exclusions configured: every check is needed

    def without_url_building(method: Any) -> Any:
        @functools.wraps(method)
        def run(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if self._otel_request_hook or self._otel_response_hook:  # a hook may want the URL
                return method(self, request, *args, **kwargs)
            request.build_absolute_uri = _no_url  # shadows the method on this request object
            try:
                return method(self, request, *args, **kwargs)
            finally:
                del request.build_absolute_uri

        return run

    for name in ("process_request", "process_view", "process_exception", "process_response"):
        setattr(middleware, name, without_url_building(getattr(middleware, name)))


def _only_what_the_object_adds(extract: Any) -> Any:
    """The contrib passes the attributes the span started with as ``existing``, then sets the
    result on the span one by one; without them, it sets only what the request object adds."""

    @functools.wraps(extract)
    def extract_new(obj: Any, attribute_names: Any, existing: Any = None) -> Any:
        return extract(obj, attribute_names)

    return extract_new


def _name_span_from_djangos_match(middleware: Any) -> None:
    """The span starts named after the method and is named once, from Django's own match.

    The contrib names it at start by resolving the URL, before Django resolves it again, and
    the route fix renamed it once more. Now ``process_view`` names it from
    ``request.resolver_match``, with the route slashed (see :func:`_follow_http_conventions`),
    and when no view ran (a 404, or a middleware answered) ``process_response`` names it as the
    contrib would. Only a custom sampler reading span names at start would notice.
    """
    full_name = middleware._get_span_name  # the contrib's: Django's match if set, else resolves
    process_view = middleware.process_view
    process_response = middleware.process_response
    from otel_launch._runtime.integrations.django.request import method_name as sanitized

    def method_name(request: Any) -> str:
        return sanitized(request.method)

    @functools.wraps(process_view)
    def named_process_view(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        result = process_view(self, request, *args, **kwargs)
        span = request.META.get(self._environ_span_key)
        if span is None:
            return result
        route = getattr(request.resolver_match, "route", None)
        if route and not route.startswith(("/", "^")):
            slashed = f"/{route}"
            metric_attributes = request.META.get(self._environ_duration_attr_key) or {}
            for key, value in metric_attributes.items():
                if value == route:
                    metric_attributes[key] = slashed
            if span.is_recording():
                span.set_attribute("http.route", slashed)
            route = slashed
        if span.is_recording():
            method = method_name(request)
            span.update_name(f"{method} {route}" if route and method != "HTTP" else full_name(request))
        return result

    @functools.wraps(process_response)
    def named_process_response(self: Any, request: Any, response: Any) -> Any:
        if getattr(request, "resolver_match", None) is None:  # no view ran: a middleware answered
            span = request.META.get(self._environ_span_key)
            if span is not None and span.is_recording():
                span.update_name(full_name(request))
        return process_response(self, request, response)

    middleware._get_span_name = staticmethod(method_name)
    middleware.process_view = named_process_view
    middleware.process_response = named_process_response


def _no_headers(headers: Any) -> dict:
    return {}


def _no_url(location: Any = None) -> str:
    return ""
