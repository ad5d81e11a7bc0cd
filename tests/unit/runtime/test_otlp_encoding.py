"""The fast span encoder writes exactly what the SDK's encoder writes."""

from __future__ import annotations

import importlib

import pytest
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from otel_launch._runtime import _otlp_encoding
from otel_launch._runtime._otlp_encoding import encode_request, encode_span, fast_encode_spans, serialized_spans


def finished_spans(resource: Resource, *scopes: tuple[str, str | None, str | None]) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracers = [provider.get_tracer(name, version, schema_url=schema) for name, version, schema in scopes]
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("k", "v")]))
    values = {
        "text": "GET",
        "unicode": "caf\u00e9 \u20ac",
        "long": "x" * 200,
        "very long": "y" * 20_000,
        "empty": "",
        "yes": True,
        "no": False,
        "zero": 0,
        "negative": -5,
        "big": 2**62,
        "ratio": 0.25,
        "strings": ("a", "b"),
        "numbers": (1, 2, 3),
    }
    first, second = tracers[0], tracers[-1]
    with first.start_as_current_span("GET /orders/<int:pk>/", kind=SpanKind.SERVER, attributes=values):
        with second.start_as_current_span("SELECT", kind=SpanKind.CLIENT, attributes={"db.system": "sqlite"}) as db:
            db.set_status(Status(StatusCode.ERROR, "disk I/O error"))
            db.record_exception(ValueError("boom"))
        with second.start_as_current_span("", kind=SpanKind.PRODUCER) as unnamed:
            unnamed.set_status(Status(StatusCode.OK))
    from opentelemetry import trace

    with first.start_as_current_span("run/tick", context=trace.set_span_in_context(NonRecordingSpan(remote))):
        pass
    first.start_span("linked", links=[Link(remote, {"why": "batch"})]).end()
    # The same key with values equal in Python but of different types must not share a cache entry.
    for value in (True, 1, 1.0, 1, True):
        first.start_span("typed", attributes={"same": value}).end()
    for status in (Status(StatusCode.ERROR, "timed out"), Status(StatusCode.ERROR), Status(StatusCode.OK)):
        failed = first.start_span("no event, a status", attributes={"text": "GET"})
        failed.set_status(status)
        failed.end()
    from opentelemetry.sdk.trace import SpanLimits

    limits = SpanLimits(max_span_attributes=2, max_event_attributes=1, max_events=1)
    limited = TracerProvider(resource=resource, span_limits=limits)
    limited.add_span_processor(SimpleSpanProcessor(exporter))
    dropping = limited.get_tracer(*scopes[0][:2]).start_span("dropped", attributes={"a": 1, "b": 2, "c": 3})
    dropping.add_event("first", {"x": "1", "y": ("a", "b")})  # one attribute dropped
    dropping.add_event("", {})  # the event dropped
    dropping.end()
    marked = first.start_span("an event of ours")
    marked.add_event("n_plus_one", {"otel_launch.n_plus_one.count": 10})
    marked.end()
    return list(exporter.get_finished_spans())


RESOURCE = Resource.create(
    {"service.name": "shop", "service.instance.id": "abc"}, schema_url="https://opentelemetry.io/schemas/1.21.0"
)


@pytest.mark.parametrize(
    "scopes",
    [
        [("django", "0.66b1", None)],
        [("django", None, "https://example.com/schema"), ("dbapi", "1.0", None)],
    ],
)
def test_bytes_are_the_sdk_encoders_bytes(scopes):
    spans = finished_spans(RESOURCE, *scopes)
    assert encode_request(spans) == encode_spans(spans).SerializeToString()
    # And again, now that every attribute comes from the cache.
    assert encode_request(spans) == encode_spans(spans).SerializeToString()


def test_spans_of_two_resources_are_grouped_as_the_sdk_groups_them():
    web = finished_spans(RESOURCE, ("a", None, None))
    worker = finished_spans(Resource.create({"service.name": "worker"}), ("a", None, None))
    interleaved = [span for pair in zip(web, worker, strict=True) for span in pair]
    assert fast_encode_spans(interleaved) == encode_spans(interleaved)


def test_an_encoding_error_falls_back_to_the_sdk_encoder(monkeypatch):
    spans = finished_spans(RESOURCE, ("a", None, None))
    monkeypatch.setattr(_otlp_encoding, "_span", lambda span: 1 / 0)
    assert fast_encode_spans(spans) == encode_spans(spans)


def test_install_makes_the_otlp_grpc_exporter_module_encode_fast(monkeypatch):
    name = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
    exporter_module = importlib.import_module(name)
    monkeypatch.setattr(exporter_module, "encode_spans", encode_spans)
    _otlp_encoding.install(name)
    assert exporter_module.encode_spans is fast_encode_spans
    spans = finished_spans(RESOURCE, ("a", None, None))
    assert isinstance(exporter_module.encode_spans(spans), ExportTraceServiceRequest)
    assert exporter_module.encode_spans(spans) == encode_spans(spans)


def test_install_gives_the_otlp_http_exporter_module_the_bytes_it_serializes(monkeypatch):
    name = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
    exporter_module = importlib.import_module(name)
    monkeypatch.setattr(exporter_module, "encode_spans", encode_spans)
    _otlp_encoding.install(name)
    assert exporter_module.encode_spans is serialized_spans
    spans = finished_spans(RESOURCE, ("a", None, None))
    request = exporter_module.encode_spans(spans)
    expected = encode_spans(spans)
    assert request.SerializePartialToString() == request.SerializeToString() == expected.SerializeToString()
    assert request == expected  # and as a message, for anything else an exporter may ask of it
    assert len(request.resource_spans[0].scope_spans[0].spans) == len(spans)


def test_spans_encoded_as_they_ended_make_the_same_request():
    """What the lean batch processor queues, (resource, scope, encode_span(span)), mixed with
    spans it could not encode, gives the bytes the SDK's encoder writes for the spans."""
    web = finished_spans(RESOURCE, ("a", None, None), ("b", "1.0", None))
    worker = finished_spans(Resource.create({"service.name": "worker"}), ("a", None, None))
    spans = [span for pair in zip(web, worker, strict=True) for span in pair]
    items = [
        span if number % 3 == 0 else (span.resource, span.instrumentation_scope, encode_span(span))
        for number, span in enumerate(spans)
    ]
    assert encode_request(items) == encode_spans(spans).SerializeToString()
    assert fast_encode_spans(items) == encode_spans(spans)
    assert serialized_spans(items).SerializeToString() == encode_spans(spans).SerializeToString()
