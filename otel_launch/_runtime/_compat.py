"""The contrib and SDK internals otel-launch reaches into, in one list, with what happens without them.

otel-launch installs beside whatever OpenTelemetry release (within pyproject's range) the app
pins, and some of its work uses names the contrib or the SDK do not promise to keep (a leading
underscore, an ``_internal`` module). Each feature below names what it uses. Before a feature
patches anything it asks :func:`usable`; when a name is gone (a release outside the range we
tested, or one that moved it), the feature is skipped with one warning line and the contrib's
or SDK's own behaviour serves instead: never an error in the app.

Names are one cause among others: anything an integration step raises (an import error, a
changed signature) is caught by the one guard of the registry (``integrations._activation.guard``), which
says it in one line and runs the step's fallback. And a library older than the floor otel-launch
is tested on (``FLOORS``) never runs our code at all: the guard's fallback serves from the start.

tests/unit/runtime/test_compat.py checks every name on the installed release (so each CI cell checks
its release) and runs each fallback.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from typing import Any

# feature -> (what serves instead, the "module:attribute.attribute" names it uses)
INTERNALS: dict[str, tuple[str, tuple[str, ...]]] = {
    "django-request": (
        "the contrib's Django middleware",
        (
            "opentelemetry.instrumentation._semconv:_filter_semconv_active_request_count_attr",
            "opentelemetry.instrumentation._semconv:_get_schema_url",
            "opentelemetry.instrumentation._semconv:_OpenTelemetrySemanticConventionStability._initialize",
            "opentelemetry.instrumentation._semconv:"
            "_OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode",
            "opentelemetry.instrumentation._semconv:_OpenTelemetryStabilitySignalType.HTTP",
            "opentelemetry.instrumentation._semconv:_report_new",
            "opentelemetry.instrumentation._semconv:_report_old",
            "opentelemetry.instrumentation._semconv:_server_active_requests_count_attrs_new",
            "opentelemetry.instrumentation._semconv:_server_active_requests_count_attrs_old",
            "opentelemetry.instrumentation._semconv:_server_duration_attrs_new",
            "opentelemetry.instrumentation._semconv:_server_duration_attrs_old",
            "opentelemetry.instrumentation._semconv:_set_status",
            "opentelemetry.instrumentation._semconv:HTTP_DURATION_HISTOGRAM_BUCKETS_NEW",
            "opentelemetry.instrumentation.django:_get_django_otel_middleware_position",
            "opentelemetry.semconv._incubating.metrics.http_metrics:create_http_server_active_requests",
            "opentelemetry.instrumentation.wsgi:_apply_user_agent_attributes",
            "opentelemetry.instrumentation.wsgi:_set_http_net_peer_name_server",
        ),
    ),
    "django-contrib-fixes": (
        "the contrib's Django middleware as it is (route without its leading slash, 4xx as errors)",
        (
            "opentelemetry.instrumentation.django.middleware.otel_middleware:_DjangoMiddleware._get_span_name",
            "opentelemetry.instrumentation.django.middleware.otel_middleware:_DjangoMiddleware._environ_span_key",
            "opentelemetry.instrumentation.django.middleware.otel_middleware:_DjangoMiddleware._environ_exception_key",
            "opentelemetry.instrumentation.django.middleware.otel_middleware:"
            "_DjangoMiddleware._environ_duration_attr_key",
            "opentelemetry.instrumentation.django.middleware.otel_middleware:_DjangoMiddleware._excluded_urls",
            "opentelemetry.instrumentation.django.middleware.otel_middleware:_DjangoMiddleware._otel_request_hook",
            "opentelemetry.instrumentation.django.middleware.otel_middleware:_DjangoMiddleware._otel_response_hook",
            "opentelemetry.instrumentation.django.middleware.otel_middleware:"
            "wsgi_collect_custom_request_headers_attributes",
            "opentelemetry.instrumentation.django.middleware.otel_middleware:"
            "wsgi_collect_custom_response_headers_attributes",
            "opentelemetry.instrumentation.django.middleware.otel_middleware:extract_attributes_from_object",
        ),
    ),
    "django-sql": (
        "the contrib's DB-API cursor proxies for Django's connections",
        (
            "opentelemetry.context:_SUPPRESS_INSTRUMENTATION_KEY",
            "opentelemetry.instrumentation._semconv:_report_new",
            "opentelemetry.instrumentation._semconv:_report_old",
            "opentelemetry.instrumentation.dbapi:DatabaseApiIntegration.get_connection_attributes",
            "opentelemetry.instrumentation.dbapi:TracedConnectionProxy",
        ),
    ),
    "otlp-encoding": (
        "the SDK's OTLP span encoder",
        (
            "opentelemetry.exporter.otlp.proto.common._internal:_encode_instrumentation_scope",
            "opentelemetry.exporter.otlp.proto.common._internal:_encode_key_value",
            "opentelemetry.exporter.otlp.proto.common._internal:_encode_resource",
            "opentelemetry.exporter.otlp.proto.common._internal.trace_encoder:_SPAN_KIND_MAP",
            "opentelemetry.exporter.otlp.proto.common._internal.trace_encoder:_encode_span",
            "opentelemetry.exporter.otlp.proto.common._internal.trace_encoder:_span_flags",
            "opentelemetry.exporter.otlp.proto.common._internal.trace_encoder:encode_spans",
        ),
    ),
    "app-tracer-provider": (
        "the API's rule: the first tracer provider set stays (an app's own, set after ours, is refused)",
        ("opentelemetry.trace:_TRACER_PROVIDER", "opentelemetry.trace:_TRACER_PROVIDER_SET_ONCE"),
    ),
    "app-meter-provider": (
        "the API's rule: the first meter provider set stays (an app's own, set after ours, is refused)",
        ("opentelemetry.metrics._internal:_METER_PROVIDER", "opentelemetry.metrics._internal:_METER_PROVIDER_SET_ONCE"),
    ),
    "metric-preferences": (
        "the SDK's default metric temporality and aggregation",
        (
            "opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder:OTLPMetricExporterMixin._get_temporality",
            "opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder:OTLPMetricExporterMixin._get_aggregation",
        ),
    ),
    "drop-counts": (
        "the SDK's batch processors, without the count of what a full queue dropped",
        ("opentelemetry.sdk._shared_internal:BatchProcessor",),
    ),
    # Only with asgiref before 3.6 (Django 3.2 to 4.1 allow it): see coroutine_functions().
    "django-async-before-asgiref-3.6": (
        "the contrib's Django middleware",
        ("asyncio.coroutines:_is_coroutine",),
    ),
    "metric-locks-at-fork": (
        "the SDK's metric locks as the parent left them at fork (a child forked during a collection may wait on them)",
        (
            "opentelemetry.sdk.metrics._internal.measurement_consumer:SynchronousMeasurementConsumer",
            "opentelemetry.sdk.metrics._internal.metric_reader_storage:MetricReaderStorage",
            "opentelemetry.sdk.metrics._internal._view_instrument_match:_ViewInstrumentMatch",
        ),
    ),
    # _lifecycle.renew_after_unannounced_fork: what Python's fork hooks would have run, in a process
    # forked without them (uWSGI's workers, a C extension's fork).
    "unannounced-fork": (
        "telemetry off in a process forked without Python's fork hooks (one warning line there)",
        (
            "opentelemetry.sdk._shared_internal:BatchProcessor._at_fork_reinit",
            "opentelemetry.sdk.metrics.export:PeriodicExportingMetricReader._at_fork_reinit",
            "opentelemetry.sdk.resources:ProcessResourceDetector",
            "opentelemetry.sdk.resources:ServiceInstanceIdResourceDetector",
            "opentelemetry.util._once:Once",
        ),
    ),
    "span-encoding": (  # _span_export.py
        "the SDK's batch span processor (spans encoded by its export thread)",
        ("opentelemetry.sdk._shared_internal:BatchProcessor.emit",),
    ),
    "otlp-grpc-bytes": (  # _otlp_encoding.send_bytes
        "the OTLP/gRPC exporter parsing each batch's bytes into a message",
        ("opentelemetry.exporter.otlp.proto.grpc.exporter:OTLPExporterMixin._initialize_channel_and_stub",),
    ),
    "unsampled-children": (  # django/sql.py: queries inside an unsampled span
        "the sampler asked for each query inside an unsampled span",
        (
            "opentelemetry.sdk.trace.sampling:ParentBased.should_sample",
            "opentelemetry.sdk.trace.sampling:StaticSampler",
            "opentelemetry.sdk.trace.sampling:Decision.DROP",
            "opentelemetry.trace.propagation:_SPAN_KEY",
        ),
    ),
}
# The contrib middleware's fixes name its spans with our request path's method names.
INTERNALS["django-contrib-fixes"] = (
    INTERNALS["django-contrib-fixes"][0],
    INTERNALS["django-contrib-fixes"][1] + INTERNALS["django-request"][1],
)
# Instance attributes (no class has them): tests/unit/runtime/test_compat.py checks them on real objects;
# the code using them catches their absence at run time (see each feature).
INSTANCE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "django-sql": (  # of a DatabaseApiIntegration, in django/sql.py
        "_sem_conv_opt_in_mode_db",
        "_tracer",
        "database",
        "name",
        "database_system",
        "span_attributes",
        "connection_props",
        "_duration_histogram",
        "_returned_rows_histogram",
        "_server_address",
        "_server_port",
    ),
    "drop-counts": ("_batch_processor",),  # of a BatchSpanProcessor, in sdk/parts.py
    # of a BatchSpanProcessor's _batch_processor, and of a Resource's attributes, in _lifecycle.py
    "unannounced-fork": ("_pid", "_queue", "_bsp_reset_once"),
    "span-encoding": ("_batch_processor",),  # of a BatchSpanProcessor, in _span_export.py
    "otlp-grpc-bytes": ("_stub", "_channel", "_client"),  # of an OTLP/gRPC exporter
    # of the SDK's ParentBased and StaticSampler, in django/sql.py
    "unsampled-children": ("_local_parent_not_sampled", "_remote_parent_not_sampled", "_decision"),
}


# The oldest release of each library that otel-launch's own integration of it is tested on (the
# matrix's floors cell; README "Supported versions"). Below it, the integration's fallback serves
# (the contrib's instrumentation, whose own range is wider), with one warning line: untested code
# of ours never runs on it. Keyed by the top-level module; read from the imported module itself.
FLOORS: dict[str, tuple[str, str]] = {
    "django": ("Django", "3.2"),
    "celery": ("Celery", "5.2.0"),
    "kombu": ("kombu", "5.2.1"),
}


class OlderThanSupported(Exception):
    """The installed library is older than the floor otel-launch's own integration of it is tested on."""


def _release(text: str) -> tuple[int, ...]:
    """The numeric release of a version string ("5.2.0rc1" -> (5, 2, 0)); () when there is none."""
    numbers = []
    for part in text.split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) != len(part):
            break
    return tuple(numbers)


def library_version(module_name: str) -> str | None:
    """The ``__version__`` of an imported top-level module, if it says one."""
    version = getattr(sys.modules.get(module_name.partition(".")[0]), "__version__", None)
    return version if isinstance(version, str) else None


def older_than_supported(library: str) -> str | None:
    """Why the imported ``library`` is below otel-launch's floor for it; None when it is not (or unknown)."""
    floor = FLOORS.get(library)
    version = library_version(library) if floor is not None else None
    if floor is None or version is None or not _release(version) or _release(version) >= _release(floor[1]):
        return None
    return f"{floor[0]} {version} is older than otel-launch supports ({floor[1]} and later)"


def check_floor(trigger: str) -> None:
    """Raise when the library of an integration step is older than otel-launch supports."""
    older = older_than_supported(trigger.partition(".")[0])
    if older is not None:
        raise OlderThanSupported(older)


def missing(feature: str) -> list[str]:
    """The names of a feature that the installed releases do not have."""
    return [name for name in INTERNALS[feature][1] if not _present(name)]


def _present(name: str) -> bool:
    module_name, _, path = name.partition(":")
    try:
        found: object = importlib.import_module(module_name)
        for part in path.split("."):
            found = getattr(found, part)
    except Exception:  # ImportError, AttributeError, or a module failing at import
        return False
    return True


@functools.cache
def usable(feature: str) -> bool:
    """Whether a feature can run on the installed releases; the first time it cannot, one warning line."""
    gone = missing(feature)
    if not gone:
        return True
    from otel_launch._runtime._log import warn

    more = f" and {len(gone) - 1} more" if len(gone) > 1 else ""
    releases = f"opentelemetry-instrumentation {_version('opentelemetry-instrumentation')}"
    releases += f" / opentelemetry-sdk {_version('opentelemetry-sdk')}"
    warn(f"{feature}: {gone[0]}{more} not found in {releases}; {INTERNALS[feature][0]} serves instead")
    return False


def coroutine_functions() -> tuple[Any, Any]:
    """asgiref's ``iscoroutinefunction`` and ``markcoroutinefunction`` for Django middleware.

    asgiref has them from 3.6, which Django requires from 4.2; Django 3.2 to 4.1 allow older
    releases (an app's lock file pins asgiref 3.5.2 with Django 4.1), and themselves tell an async
    middleware by asyncio's check and its ``_is_coroutine`` mark. The same check and mark here.
    """
    try:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    except ImportError:
        pass
    else:
        return iscoroutinefunction, markcoroutinefunction
    import asyncio

    if not usable("django-async-before-asgiref-3.6"):
        raise ImportError("asgiref < 3.6 and no asyncio.coroutines._is_coroutine to mark async middleware with")
    mark = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]

    def markcoroutinefunction(func: Any) -> Any:
        func._is_coroutine = mark
        return func

    return asyncio.iscoroutinefunction, markcoroutinefunction


def _version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "(not installed)"


# Resource attributes of the process that may hold secrets (a password in an argument): the SDK
# records them only when asked from 1.44; before, its process detector always did.
_ARGV_KEYS = ("process.command_args", "process.command_line")
_renewed_at_fork: list = []


def process_resource(resource: Any) -> Any:
    """The SDK's Resource for this process as SDK 1.44+ makes it, also on 1.43.

    From 1.44 the SDK leaves the command line out unless asked, and its providers renew the
    process-dependent attributes (``process.pid``, ``service.instance.id``) in a forked child.
    On an SDK that does neither, the command line is dropped here, and in a forked child this
    Resource (the one object every provider, tracer and span of ours shares) is updated in place.
    """
    from opentelemetry.sdk.resources import ProcessResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider

    init = getattr(ProcessResourceDetector.__init__, "__code__", None)
    if init is None or "include_command_args" not in init.co_varnames:
        kept = {key: value for key, value in resource.attributes.items() if key not in _ARGV_KEYS}
        resource = Resource(kept, resource.schema_url)
    if not hasattr(TracerProvider, "_handle_fork"):
        if not _renewed_at_fork:
            os.register_at_fork(after_in_child=_renew_in_child)
        _renewed_at_fork[:] = [resource]
    return resource


def _renew_in_child() -> None:
    try:
        renew_process_identity(_renewed_at_fork)
    except Exception as exc:  # never in the way of a fork
        from otel_launch._runtime._log import warn

        warn(f"could not renew process.pid and service.instance.id after fork ({type(exc).__name__}: {exc})")


def renew_process_identity(resources: list) -> None:
    """This process's ``process.*`` and ``service.instance.id`` attributes, written into these
    Resources in place (each is shared by a provider, its tracers and the spans they made), for
    the keys each already has."""
    from opentelemetry.sdk.resources import ProcessResourceDetector, ServiceInstanceIdResourceDetector

    fresh: dict[str, Any] = {}
    for detector in (ProcessResourceDetector(), ServiceInstanceIdResourceDetector()):
        fresh.update(detector.detect().attributes)
    for resource in resources:
        if resource is None:
            continue
        attributes = resource.attributes  # the SDK's BoundedAttributes: read-only through its API
        with attributes._lock:
            for key, value in fresh.items():
                if key in attributes._dict and key not in _ARGV_KEYS:
                    attributes._dict[key] = value
    encoding = sys.modules.get("otel_launch._runtime._otlp_encoding")
    if encoding is not None:
        encoding._groups.clear()  # it keeps each resource encoded, by object
