"""The contrib and SDK internals otel-launch reaches into, in one list, with what happens without them.

otel-launch installs beside whatever OpenTelemetry release (within pyproject's range) the app
pins, and some of its work uses names the contrib or the SDK do not promise to keep (a leading
underscore, an ``_internal`` module). Each feature below names what it uses. Before a feature
patches anything it asks :func:`usable`; when a name is gone (a release outside the range we
tested, or one that moved it), the feature is skipped with one warning line and the contrib's
or SDK's own behaviour serves instead: never an error in the app.

tests/unit/test_compat.py checks every name on the installed release (so each CI cell checks
its release) and runs each fallback.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from importlib import metadata
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
# Instance attributes (no class has them): tests/unit/test_compat.py checks them on real objects;
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
    "drop-counts": ("_batch_processor",),  # of a BatchSpanProcessor, in _sdk.py
    "span-encoding": ("_batch_processor",),  # of a BatchSpanProcessor, in _span_export.py
    "otlp-grpc-bytes": ("_stub", "_channel", "_client"),  # of an OTLP/gRPC exporter
    # of the SDK's ParentBased and StaticSampler, in django/sql.py
    "unsampled-children": ("_local_parent_not_sampled", "_remote_parent_not_sampled", "_decision"),
}


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


def _version(distribution: str) -> str:
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
        from opentelemetry.sdk.resources import ProcessResourceDetector, ServiceInstanceIdResourceDetector

        fresh: dict[str, Any] = {}
        for detector in (ProcessResourceDetector(), ServiceInstanceIdResourceDetector()):
            fresh.update(detector.detect().attributes)
        for resource in _renewed_at_fork:
            attributes = resource.attributes  # the SDK's BoundedAttributes: read-only through its API
            with attributes._lock:
                for key, value in fresh.items():
                    if key in attributes._dict and key not in _ARGV_KEYS:
                        attributes._dict[key] = value
        encoding = sys.modules.get("otel_launch._runtime._otlp_encoding")
        if encoding is not None:
            encoding._groups.clear()  # it keeps each resource encoded, by object
    except Exception as exc:  # never in the way of a fork
        from otel_launch._runtime._log import warn

        warn(f"could not renew process.pid and service.instance.id after fork ({type(exc).__name__}: {exc})")
