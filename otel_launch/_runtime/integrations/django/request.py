"""Sample-first Django server spans: our middleware in place of the contrib's in the request path.

Reproduces ``opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware``
(the contrib) for a sampled request, in each ``OTEL_SEMCONV_STABILITY_OPT_IN`` mode (unset,
``http``, ``http/dup``): the span (scope ``opentelemetry.instrumentation.django``, SERVER when no
span is current, else INTERNAL), its name (the route, slashed, as otel-launch names it), its
request attributes (the contrib's own WSGI/ASGI collectors), ``http.route``, response status
attributes and status, captured headers (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_*``,
sanitized), ``OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS``, the exception event of a 5xx (not of a
4xx: otel-launch's rule), exclusions (``OTEL_PYTHON_DJANGO_EXCLUDED_URLS`` /
``OTEL_PYTHON_EXCLUDED_URLS``), the response propagator, and the duration histogram of each mode
(``http.server.duration`` ms / ``http.server.request.duration`` s) with the same attributes.

What differs, on purpose:

- **Sample-first.** The span starts with the method as its provisional name and no attributes:
  the sampler decides on trace id, parent, kind and that name. Request attributes are collected
  only when it said "record", and handed to the span inside the sampling result, so span
  processors see them at ``on_start`` as with the contrib. An unsampled request costs context
  propagation (its children and the tasks it sends stay unsampled; ``traceparent`` flows on),
  its non-recording span and the duration metric: no attribute collector, no N+1 watch, and
  its SQL queries start no span (``sql.py``).
- **The duration histograms** are recorded through measurements bound to their attribute set
  (``_histograms.BoundHistogram``), found by the raw values the attributes come from (a few
  environ or scope reads); the attributes are built, by lean readers of the environ and scope
  (``_metric_attributes``, ``_asgi_metric_attributes``: the keys and values the contrib's
  collectors give them, tests/unit/runtime/integrations/test_django_lean_readers.py), once per combination.
- ``http.server.active_requests`` (development status; 2 of the contrib's 3 measurements a
  request) only with ``OTEL_LAUNCH_HTTP_ACTIVE_REQUESTS=true``.
- One context attach a request (the contrib attaches twice), the absolute URL built only when
  exclusions are set, header scans only when capture is configured.
- An ASGI handler runs this middleware as a coroutine (the contrib's is sync-only, so Django
  runs it in a thread for each of its four hooks).
"""

from __future__ import annotations

import contextlib
import threading
from timeit import default_timer
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation._semconv import (
    _filter_semconv_active_request_count_attr,
    _get_schema_url,
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _report_new,
    _report_old,
    _server_active_requests_count_attrs_new,
    _server_active_requests_count_attrs_old,
    _server_duration_attrs_new,
    _server_duration_attrs_old,
    _set_status,
)
from opentelemetry.instrumentation.django.version import __version__ as _contrib_version
from opentelemetry.instrumentation.propagators import get_global_response_propagator
from opentelemetry.instrumentation.utils import extract_attributes_from_object
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
    SanitizeValue,
    get_custom_headers,
    get_excluded_urls,
    get_traced_request_attrs,
    normalise_request_header_name,
    normalise_response_header_name,
    sanitize_method,
)

from otel_launch._runtime._compat import coroutine_functions
from otel_launch._runtime.integrations._lean_context import attach, detach, extract_wsgi, get_current
from otel_launch._runtime.integrations.django import n_plus_one

iscoroutinefunction, markcoroutinefunction = coroutine_functions()  # asgiref's, also before asgiref 3.6

SCOPE = "opentelemetry.instrumentation.django"  # the contrib's: e2e helpers and users select on it
MIDDLEWARE = f"{__name__}.OpenTelemetryMiddleware"
_START_TIME_KEY = "opentelemetry-instrumentor-django.starttime_key"  # as the contrib reads it
_SERVER, _INTERNAL = trace.SpanKind.SERVER, trace.SpanKind.INTERNAL


class _Config:
    """Everything the contrib reads from the environment once, read once here too."""

    def __init__(self, provider: Any) -> None:
        import os

        from otel_launch._core.settings import read_setting

        self.provider = provider

        _OpenTelemetrySemanticConventionStability._initialize()
        mode = _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(
            _OpenTelemetryStabilitySignalType.HTTP
        )
        self.mode = mode
        self.old, self.new = _report_old(mode), _report_new(mode)
        schema_url = _get_schema_url(mode)
        # An SDK tracer of the provider of the moment, whose sampler sample-first wraps (ours hands
        # out tracers that follow a provider the app sets later, see sdk/parts.py; those it cannot wrap).
        get_tracer = getattr(provider, "get_sdk_tracer", None) or provider.get_tracer
        self.tracer = get_tracer(SCOPE, _contrib_version, schema_url)
        self.sample_first = _put_attributes_in_the_sampling_result(self.tracer)
        meter = metrics.get_meter(SCOPE, _contrib_version, schema_url=schema_url)
        self.duration_old = self.duration_new = self.active = None
        if self.old:
            from opentelemetry.semconv.metrics import MetricInstruments

            self.duration_old = meter.create_histogram(
                name=MetricInstruments.HTTP_SERVER_DURATION,
                unit="ms",
                description="Measures the duration of inbound HTTP requests.",
            )
        if self.new:
            from opentelemetry.instrumentation._semconv import HTTP_DURATION_HISTOGRAM_BUCKETS_NEW
            from opentelemetry.semconv.metrics.http_metrics import HTTP_SERVER_REQUEST_DURATION

            self.duration_new = meter.create_histogram(
                name=HTTP_SERVER_REQUEST_DURATION,
                description="Duration of HTTP server requests.",
                unit="s",
                explicit_bucket_boundaries_advisory=HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
            )
        self.enduser = None  # enduser.record when OTEL_LAUNCH_ENDUSER_ID asks for enduser.id
        if read_setting("enduser_id", os.environ):
            from otel_launch._runtime.integrations.django import enduser

            self.enduser = enduser.record
        if read_setting("http_active_requests", os.environ):
            from opentelemetry.semconv._incubating.metrics.http_metrics import create_http_server_active_requests

            self.active = create_http_server_active_requests(meter)
        excluded = get_excluded_urls("DJANGO")
        self.excluded = excluded if excluded._excluded_urls else None
        self.traced_attrs = get_traced_request_attrs("DJANGO")
        self.request_headers = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST)
        self.response_headers = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE)
        self.sanitize = SanitizeValue(get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS))
        from opentelemetry.instrumentation.wsgi import wsgi_getter

        self.wsgi_getter, self.asgi_getter = wsgi_getter, None  # the ASGI one imported when first needed
        # Bound duration measurements of requests that are not recorded, by their raw values (_durations).
        self.bound: dict[tuple, tuple[Any, Any]] = {}


_methods: dict[str, str] = {}  # sanitize_method reads the environment on every call


def method_name(method: str) -> str:
    """The method as the span name's first word: sanitized, "HTTP" for one not known.
    Also the contrib middleware's, when the app instrumented Django itself (contrib_middleware.py)."""
    name = _methods.get(method)
    if name is None:
        name = sanitize_method(method.strip())
        name = "HTTP" if name == "_OTHER" else name
        if len(_methods) < 64:  # any string can be a method: keep the table small
            _methods[method] = name
    return name


_config: _Config | None = None
# The request whose span is being started, for the sampler wrapper: [request, carrier, is_asgi,
# the attributes the wrapper collected].
_pending = threading.local()


def config() -> _Config:
    """The request path's configuration, made again when the app sets its own tracer provider
    after ours served (gunicorn's ``post_fork`` with ``--preload``, uWSGI's ``@postfork``, as the
    OpenTelemetry guides advise): its server spans follow, as every other span does."""
    c = _config
    if c is not None and c.provider is getattr(trace, "_TRACER_PROVIDER", None):  # get_tracer_provider(), once set
        return c
    return _configure()


def _configure() -> _Config:
    global _config
    provider = trace.get_tracer_provider()
    if _config is None or _config.provider is not provider:
        _config = _Config(provider)
    return _config


# --- sample-first: attributes enter the span through the sampling result ----------------------------


def _put_attributes_in_the_sampling_result(tracer: Any) -> bool:
    """Wrap this tracer's sampler (the SDK's ``Tracer.sampler``, ours alone: other tracers keep
    the provider's) so that a "record" decision, taken without attributes, carries the request's
    attributes into the span. False when the tracer is not the SDK's (then they are set after)."""
    sampler = getattr(tracer, "sampler", None)
    if sampler is None or not type(tracer).__module__.startswith("opentelemetry.sdk.trace"):
        return False
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    drop = Decision.DROP

    class SampleFirst(Sampler):
        def should_sample(
            self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
        ):  # noqa: E501
            result = sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
            if result.decision is drop:  # an unsampled request's answer, as it came
                return result
            pending = getattr(_pending, "request", None)
            if pending is None or not result.decision.is_recording():
                return result
            collected = pending[3] = _request_attributes(pending[0], pending[1], pending[2])
            if result.attributes:
                collected = {**collected, **result.attributes}
            return SamplingResult(result.decision, collected, result.trace_state)

        def get_description(self) -> str:
            return sampler.get_description()

    tracer.sampler = SampleFirst()
    return True


def _is_asgi(request: Any) -> bool:
    return "scope" in request.__dict__  # ASGIRequest keeps the scope; a WSGIRequest has none


def _request_attributes(request: Any, carrier: Any, is_asgi: bool) -> dict:
    """All the contrib records at span start, collected by the contrib's own functions."""
    c = config()
    if is_asgi:
        from opentelemetry.instrumentation.asgi import collect_custom_headers_attributes
        from opentelemetry.instrumentation.asgi import collect_request_attributes as collect

        attributes = collect(carrier, c.mode)
        if c.request_headers:
            attributes.update(
                collect_custom_headers_attributes(carrier, c.sanitize, c.request_headers, normalise_request_header_name)
            )
        if c.traced_attrs:
            import types

            headers = {k.decode("latin1"): v.decode("latin1") for k, v in carrier.get("headers", [])}
            attributes.update(extract_attributes_from_object(request, c.traced_attrs))
            attributes.update(extract_attributes_from_object(types.SimpleNamespace(**headers), c.traced_attrs))
        return attributes
    attributes = _wsgi_request_attributes(carrier, c)
    if c.request_headers:
        from opentelemetry.instrumentation.wsgi import collect_custom_request_headers_attributes

        attributes.update(collect_custom_request_headers_attributes(carrier))
    if c.traced_attrs:
        attributes.update(extract_attributes_from_object(request, c.traced_attrs))
    return attributes


_sanitized: dict[str, str] = {}  # the contrib's sanitize_method() of a raw method, read once


def _wsgi_request_attributes(environ: dict, c: _Config) -> dict:
    """The contrib's ``opentelemetry.instrumentation.wsgi.collect_request_attributes`` (0.64b0-0.66b1),
    its common path written out: the same keys, values and order in each semconv mode, without
    its ~25 helper calls (each asking which mode is on) a request. The rare parts (no target, a
    ``REMOTE_HOST``, a user agent) are the contrib's own functions;
    tests/unit/runtime/integrations/test_django_lean_readers.py compares the two on a range of environs."""
    from opentelemetry.instrumentation import wsgi

    old, new = c.old, c.new
    result: dict[str, Any] = {}
    original = environ.get("REQUEST_METHOD", "")
    normalized = _sanitized.get(original)
    if normalized is None:
        normalized = sanitize_method(original).strip()
        if len(_sanitized) < 64:  # any string can be a method: keep the table small
            _sanitized[original] = normalized
    original = original.strip()
    if original != normalized and new and original:
        result["http.request.method_original"] = original
    if normalized:
        if old:
            result["http.method"] = normalized
        if new:
            result["http.request.method"] = normalized
    if old:
        result["http.server_name"] = environ.get("SERVER_NAME")
    scheme = environ.get("wsgi.url_scheme")
    if scheme:
        if old:
            result["http.scheme"] = scheme
        if new:
            result["url.scheme"] = scheme
    host = environ.get("HTTP_HOST")
    if host:
        if old:
            result["net.host.name"] = host
        if new:
            result["server.address"] = host
        if old:
            result["http.host"] = host
    port = environ.get("SERVER_PORT")
    if port:
        port = int(port)  # raises, as the contrib's does, for a port that is not a number
        if port:
            if old:
                result["net.host.port"] = port
            if new:
                result["server.port"] = port
    target = environ.get("RAW_URI")
    if target is None:
        target = environ.get("REQUEST_URI")
    if target:
        if old:
            result["http.target"] = target
        if new:
            path, query = environ.get("PATH_INFO"), environ.get("QUERY_STRING")
            if path:
                result["url.path"] = path
            if query:
                result["url.query"] = query
    elif old:
        from wsgiref.util import request_uri

        from opentelemetry.util.http import redact_url

        result["http.url"] = redact_url(request_uri(environ))
    address = environ.get("REMOTE_ADDR")
    if address:
        if old:
            result["net.peer.ip"] = address
        if new and not result.get("client.address"):
            result["client.address"] = address
    peer_port = environ.get("REMOTE_PORT")
    if peer_port:
        try:
            number = int(peer_port)
        except (ValueError, TypeError):
            pass
        else:
            if old:
                result["net.peer.port"] = number
            if new:
                result["client.port"] = number
    remote_host = environ.get("REMOTE_HOST")
    if remote_host and remote_host != address:
        wsgi._set_http_net_peer_name_server(result, remote_host, c.mode)
    if environ.get("HTTP_USER_AGENT"):
        wsgi._apply_user_agent_attributes(result, environ, c.mode)
    flavor = environ.get("SERVER_PROTOCOL", "")
    if flavor.upper().startswith("HTTP/"):
        flavor = flavor[5:]
    if flavor:
        if old:
            result["http.flavor"] = flavor
        if new:
            result["network.protocol.version"] = flavor
    return result


def path_of(target: str) -> str:
    """``http.target`` as a metric attribute: the path alone. Without a route (a 404, a
    middleware's answer) the contrib records the raw target, query included: a token in it would
    be stored in every metric backend, and each distinct query would make a time series of its
    own. Dropping the query, rather than masking its secret values, answers both."""
    return target.partition("?")[0] if "?" in target else target


def _metric_attributes(environ: dict, c: _Config) -> dict:
    """What the duration histograms keep of the WSGI collector's request attributes, read straight
    from the environ (the same keys and values ``opentelemetry.instrumentation.wsgi``'s
    ``collect_request_attributes`` gives them; tests/unit/runtime/integrations/test_django_lean_readers.py compares)."""
    attributes: dict[str, Any] = {}
    method = method_name(environ.get("REQUEST_METHOD", ""))
    method = "_OTHER" if method == "HTTP" else method
    scheme = environ.get("wsgi.url_scheme")
    flavor = environ.get("SERVER_PROTOCOL", "")
    if flavor.upper().startswith("HTTP/"):
        flavor = flavor[5:]
    if c.old:
        if method:
            attributes["http.method"] = method
        attributes["http.server_name"] = environ.get("SERVER_NAME")
        if scheme:
            attributes["http.scheme"] = scheme
        host = environ.get("HTTP_HOST")
        if host:
            attributes["net.host.name"] = attributes["http.host"] = host
        port = environ.get("SERVER_PORT")
        if port and port.isdigit():
            attributes["net.host.port"] = int(port)
        target = environ.get("RAW_URI")
        if target is None:
            target = environ.get("REQUEST_URI")
        if target:
            attributes["http.target"] = target
        if flavor:
            attributes["http.flavor"] = flavor
    if c.new:
        if method:
            attributes["http.request.method"] = method
        if scheme:
            attributes["url.scheme"] = scheme
        if flavor:
            attributes["network.protocol.version"] = flavor
    return attributes


def _asgi_metric_attributes(scope: dict, c: _Config) -> dict:
    """The same for an ASGI scope: what ``opentelemetry.instrumentation.asgi``'s
    ``collect_request_attributes`` gives the keys the duration histograms keep."""
    attributes: dict[str, Any] = {}
    method = (scope.get("method") or "").strip()
    if method:
        method = sanitize_method(method).strip()
    scheme = scope.get("scheme")
    flavor = scope.get("http_version")
    if c.old:
        server = scope.get("server") or ["0.0.0.0", 80]
        port = server[1]
        host = server[0] + (":" + str(port) if str(port) != "80" else "")
        if scheme:
            attributes["http.scheme"] = scheme
        if host:
            attributes["http.host"] = host
        if port:
            with contextlib.suppress(ValueError, TypeError):  # the contrib's set_int_attribute
                attributes["net.host.port"] = int(port)
        if flavor:
            attributes["http.flavor"] = flavor
        path = scope.get("path")
        if path:
            attributes["http.target"] = path
        if method:
            attributes["http.method"] = method
        names = _asgi_hosts(scope)
        if names:
            attributes["http.server_name"] = ",".join(names)
    if c.new:
        if scheme:
            attributes["url.scheme"] = scheme
        if flavor:
            attributes["network.protocol.version"] = flavor
        if method:
            attributes["http.request.method"] = method
    return attributes


def _asgi_hosts(scope: dict) -> list[str]:
    """The Host header's values in an ASGI scope, decoded as the contrib's ``asgi_getter`` does."""
    return [
        value.decode("utf8") if isinstance(value, bytes) else value
        for key, value in scope.get("headers") or ()
        if (key.decode("utf8") if isinstance(key, bytes) else key).lower() == "host"
    ]


# --- the middleware ------------------------------------------------------------------------------------


class _Request:
    __slots__ = (
        "config",
        "recording",
        "span",
        "token",
        "route",
        "started",
        "exception",
        "active",
        "watch",
        "is_asgi",
    )


def _begin(request: Any) -> _Request | None:
    c = config()
    if c.excluded is not None and c.excluded.url_disabled(request.build_absolute_uri("?")):
        return None
    meta = request.META
    is_asgi = _is_asgi(request)
    carrier = request.scope if is_asgi else meta
    current = get_current()
    if _no_span_in(current):
        parent = propagate.extract(carrier, getter=_asgi_getter(c)) if is_asgi else extract_wsgi(carrier, c.wsgi_getter)
        kind = _SERVER
    else:
        parent, kind = current, _INTERNAL
    name = method_name(request.method or "")
    if c.sample_first:
        pending = _pending.request = [request, carrier, is_asgi, None]  # the sampler wrapper fills in [3]
        try:
            span = c.tracer.start_span(name, context=parent, kind=kind, start_time=meta.get(_START_TIME_KEY))
        finally:
            _pending.request = None
        collected = pending[3]
    else:
        span = c.tracer.start_span(name, context=parent, kind=kind, start_time=meta.get(_START_TIME_KEY))
        collected = _request_attributes(request, carrier, is_asgi) if span.is_recording() else None
        if collected:
            span.set_attributes(collected)
    recording = span.is_recording()
    if collected is None and recording:  # a sampler that records without being asked (none known)
        collected = _request_attributes(request, carrier, is_asgi)
        span.set_attributes(collected)
    state = _Request()
    state.config, state.span, state.is_asgi, state.exception, state.route = c, span, is_asgi, None, None
    state.recording = recording
    state.active = state.watch = None
    if c.active is not None:  # opt-in: its attributes come from the contrib's collector
        state.active = _filter_semconv_active_request_count_attr(
            collected if collected is not None else _request_attributes(request, carrier, is_asgi),
            _server_active_requests_count_attrs_old,
            _server_active_requests_count_attrs_new,
            c.mode,
        )
        c.active.add(1, state.active)
    state.token = attach(_with_span(span, parent))
    if kind is _SERVER and recording:
        state.watch = n_plus_one.begin(span)
    state.started = default_timer()
    request._otel_launch_request = state
    return state


def _name(request: Any, state: _Request) -> None:
    """Named from Django's match once a view is chosen (the contrib's ``process_view``)."""
    match = request.resolver_match
    route = getattr(match, "route", None)
    if route:
        if not route.startswith(("/", "^")):
            route = f"/{route}"
        state.route = route
    span = state.span
    if state.recording:
        if route:
            span.set_attribute("http.route", route)
        method = method_name(request.method or "")
        span.update_name(f"{method} {route}" if route and method != "HTTP" else _full_name(request, method))


def _full_name(request: Any, method: str) -> str:
    """The contrib's ``_get_span_name`` fallback: route, else URL name, else the method."""
    if method == "HTTP":
        return method
    from django.urls import Resolver404, resolve

    try:
        match = request.resolver_match or resolve(request.path)
    except Resolver404:
        return request.method
    route = getattr(match, "route", None)
    if route:
        return f"{method} {route if route.startswith(('/', '^')) else '/' + route}"
    url_name = getattr(match, "url_name", None)
    return f"{method} {url_name}" if url_name else request.method


def _finish(request: Any, state: _Request, response: Any, raised: BaseException | None = None) -> None:
    c = state.config
    span = state.span
    try:
        recording = state.recording
        code = None
        if response is not None:
            code = response.status_code
            if recording:
                if getattr(request, "resolver_match", None) is None:  # no view ran
                    span.update_name(_full_name(request, method_name(request.method or "")))
                _set_status(span, {}, code, str(code), server_span=True, sem_conv_opt_in_mode=c.mode)
                if c.response_headers and span.kind is _SERVER:
                    span.set_attributes(_response_headers(response, state.is_asgi, c))
            propagator = get_global_response_propagator()
            if propagator:
                propagator.inject(response)
        if recording:
            exception = raised or state.exception
            if exception is not None and (response is None or response.status_code >= 500):
                span.record_exception(exception)
                span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))
            if c.enduser is not None and span.kind is _SERVER:
                c.enduser(span, request, code is None or code >= 500, state.is_asgi)
        if state.watch is not None:
            n_plus_one.end(state.watch)
        duration = default_timer() - state.started
        old, new = _durations(request, state, code)
        if old is not None:
            old.record(max(round(duration * 1000), 0))
        if new is not None:
            new.record(max(duration, 0))
        if state.active is not None:
            c.active.add(-1, state.active)
    finally:
        span.end()
        detach(state.token)


def _span_key() -> Any:
    try:
        from opentelemetry.trace.propagation import _SPAN_KEY
    except ImportError:  # the API's key moved: get_current_span() says
        return None
    return _SPAN_KEY


_SPAN_KEY = _span_key()


def _with_span(span: Any, parent: Any) -> Any:
    """``trace.set_span_in_context(span, parent)``: the same new ``Context``, in one step."""
    if _SPAN_KEY is None:
        return trace.set_span_in_context(span, parent)
    return Context({**parent, _SPAN_KEY: span})


def _no_span_in(current: Any) -> bool:
    """``trace.get_current_span(current) is INVALID_SPAN``, read under the API's key (its own
    check of the span against an ABC costs more than the rest)."""
    if _SPAN_KEY is None:
        return trace.get_current_span(current) is trace.INVALID_SPAN
    span = current.get(_SPAN_KEY)
    return span is None or span is trace.INVALID_SPAN


def _asgi_getter(c: _Config) -> Any:
    if c.asgi_getter is None:
        from opentelemetry.instrumentation.asgi import asgi_getter

        c.asgi_getter = asgi_getter
    return c.asgi_getter


# --- the duration metric: bound measurements ------------------------------------------------------------

_BOUND_LIMIT = 1000  # keys kept per configuration: a Host header or an unrouted path is the client's to vary


def _durations(request: Any, state: _Request, code: int | None) -> tuple[Any, Any]:
    """The duration histograms' measurements for this request's attribute values, bound once per
    combination (``_histograms.BoundHistogram``: the SDK's own aggregation, without hashing
    the attributes again on every request). The key is the raw values the attributes come from;
    the attributes themselves are built only for a key not seen yet."""
    c = state.config
    route = state.route
    if state.is_asgi:
        scope = request.scope
        path = None if route else scope.get("path")
        server = scope.get("server")
        key: tuple = (
            scope.get("method"),
            scope.get("scheme"),
            scope.get("http_version"),
            tuple(server) if server else None,
            tuple(_asgi_hosts(scope)) if c.old else None,
            route,
            path,
            code,
        )
    else:
        meta = request.META
        target = None
        if not route:
            target = meta.get("RAW_URI")
            if target is None:
                target = meta.get("REQUEST_URI")
        key = (
            meta.get("REQUEST_METHOD"),
            meta.get("wsgi.url_scheme"),
            meta.get("SERVER_PROTOCOL"),
            meta.get("SERVER_NAME"),
            meta.get("HTTP_HOST"),
            meta.get("SERVER_PORT"),
            route,
            target,
            code,
        )
    bound = c.bound.get(key)
    if bound is None:
        if len(c.bound) >= _BOUND_LIMIT:
            c.bound.clear()
        bound = c.bound[key] = _bind(request, state, code)
    return bound


def _bind(request: Any, state: _Request, code: int | None) -> tuple[Any, Any]:
    """The two bound measurements (old and new conventions; None where the mode has none)."""
    from otel_launch._runtime.integrations._histograms import BoundHistogram

    c = state.config
    attributes = _asgi_metric_attributes(request.scope, c) if state.is_asgi else _metric_attributes(request.META, c)
    route = state.route
    if route:
        if c.old:
            attributes["http.target"] = route
        if c.new:
            attributes["http.route"] = route
    if code is not None:
        _set_status(trace.INVALID_SPAN, attributes, code, str(code), server_span=True, sem_conv_opt_in_mode=c.mode)
    old = new = None
    if c.duration_old is not None:
        kept = {k: v for k, v in attributes.items() if k in _server_duration_attrs_old}
        target = attributes.get("http.target")
        if target:
            kept["http.target"] = path_of(target)
        old = BoundHistogram(c.duration_old, kept)
    if c.duration_new is not None:
        new = BoundHistogram(c.duration_new, {k: v for k, v in attributes.items() if k in _server_duration_attrs_new})
    return old, new


def _response_headers(response: Any, is_asgi: bool, c: _Config) -> dict:
    if is_asgi:
        from opentelemetry.instrumentation.asgi import asgi_setter, collect_custom_headers_attributes

        headers: dict = {}
        for key, value in response.items():
            asgi_setter.set(headers, key, value)
        normalise = normalise_response_header_name
        return collect_custom_headers_attributes(headers, c.sanitize, c.response_headers, normalise)
    from opentelemetry.instrumentation.wsgi import collect_custom_response_headers_attributes

    return collect_custom_response_headers_attributes(response.items())


def _safely(step: Any, *args: Any) -> Any:
    """Telemetry never fails a request: a step that raises is reported once and skipped."""
    try:
        return step(*args)
    except Exception as exc:
        return _report(exc)


def _report(exc: Exception) -> None:
    global _failed
    if not _failed:
        _failed = True
        from otel_launch._runtime._log import warn

        warn(f"django request telemetry failed, the request is served ({type(exc).__name__}: {exc})")


_failed = False


class OpenTelemetryMiddleware:
    """Django middleware (sync and async) that makes each request a server span."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)  # asked once: it costs ~2 us a call
        if self._is_async:
            markcoroutinefunction(self)
            self.process_view = self._process_view_async  # Django awaits it, with no thread hop

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self._call_async(request)
        try:  # _safely, written out: the sync path is every WSGI request's
            state = _begin(request)
        except Exception as exc:
            state = _report(exc)
        if state is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:  # Django turns view errors into responses; this is rarer
            _safely(_finish, request, state, None, exc)
            raise
        try:
            _finish(request, state, response)
        except Exception as exc:
            _report(exc)
        return response

    async def _call_async(self, request: Any) -> Any:
        state = _safely(_begin, request)
        if state is None:
            return await self.get_response(request)
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            _safely(_finish, request, state, None, exc)
            raise
        _safely(_finish, request, state, response)
        return response

    def process_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> None:
        state = request.__dict__.get("_otel_launch_request")
        if state is not None:
            _name(request, state)

    async def _process_view_async(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> None:
        OpenTelemetryMiddleware.process_view(self, request, view_func, view_args, view_kwargs)

    def process_exception(self, request: Any, exception: BaseException) -> None:
        state = request.__dict__.get("_otel_launch_request")
        if state is not None:
            state.exception = exception
