"""The lean span export (spans encoded as they end, batches sent as bytes) delivers what the SDK's
batch span processor delivers, through the real OTLP exporters to a real receiver, side by side;
a full queue drops cheaply, and a retry sends the same bytes again."""

from __future__ import annotations

import importlib
import itertools
import logging
import os

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_launch._runtime import _otlp_encoding, _span_export
from otel_launch._runtime._span_export import EncodingBatchSpanProcessor
from otel_launch._runtime.sdk import parts
from otel_launch.local.receiver import OTLPReceiver

RESOURCE = Resource({"service.name": "shop", "service.instance.id": "abc"})
EXPORTERS = {
    "grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http.trace_exporter",
}


class CountingIds(IdGenerator):
    """The same ids for the same spans in both providers."""

    def __init__(self) -> None:
        self._next = itertools.count(1)

    def generate_span_id(self) -> int:
        return next(self._next)

    def generate_trace_id(self) -> int:
        return 0xABC00 + next(self._next)


class RecordingReceiver(OTLPReceiver):
    """The receiver, keeping each trace export request as it arrived (parsed)."""

    def __init__(self) -> None:
        super().__init__(grpc_port=0, http_port=0)
        self.requests_received: list = []

    def record(self, signal, transport, request):
        if signal == "traces":
            self.requests_received.append(request)
        super().record(signal, transport, request)


@pytest.fixture
def recording():
    with RecordingReceiver() as receiver:
        yield receiver


def exporter(protocol: str, receiver: OTLPReceiver, **kwargs):
    module = importlib.import_module(EXPORTERS[protocol])
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else f"{receiver.http_endpoint}/v1/traces"
    made = module.OTLPSpanExporter(endpoint=endpoint, **kwargs)
    return made, module


def make_spans(provider: TracerProvider) -> None:
    """Spans of two scopes with what the encoder writes itself and what it leaves to the SDK's
    functions: events, links, statuses, every attribute type, a parent."""
    web = provider.get_tracer(
        "opentelemetry.instrumentation.django", "0.66b1", "https://opentelemetry.io/schemas/1.11.0"
    )
    sql = provider.get_tracer("opentelemetry.instrumentation.sqlite3", "0.66b1")
    values = {"http.method": "GET", "http.status_code": 200, "ratio": 0.5, "ok": True, "tags": ("a", "b")}
    server = web.start_span("GET /orders/", kind=SpanKind.SERVER, attributes=values, start_time=1_000)
    from opentelemetry import trace

    inside = trace.set_span_in_context(server)
    query = sql.start_span("SELECT", context=inside, kind=SpanKind.CLIENT, start_time=2_000)
    query.set_attributes({"db.system": "sqlite", "db.statement": "SELECT 1"})
    query.set_status(Status(StatusCode.ERROR, "disk I/O error"))
    query.record_exception(ValueError("boom"), timestamp=2_500)
    query.end(end_time=3_000)
    linked = web.start_span(
        "linked", context=inside, links=[Link(query.get_span_context(), {"why": "x"})], start_time=4_000
    )
    linked.add_event("seen", {"n": 1}, timestamp=4_500)
    linked.end(end_time=5_000)
    server.end(end_time=6_000)


def delivered(processor_class, protocol: str, receiver: RecordingReceiver) -> list:
    receiver.requests_received.clear()
    made, module = exporter(protocol, receiver)
    if processor_class is EncodingBatchSpanProcessor:
        _otlp_encoding.install(module.__name__)
        if protocol == "grpc":
            assert _otlp_encoding.send_bytes(made)
    provider = TracerProvider(resource=RESOURCE, id_generator=CountingIds())
    processor = processor_class(made, schedule_delay_millis=60_000)
    provider.add_span_processor(processor)
    try:
        make_spans(provider)
        assert processor.force_flush()
    finally:
        provider.shutdown()
    return list(receiver.requests_received)


@pytest.mark.parametrize("protocol", list(EXPORTERS))
def test_a_receiver_gets_from_the_lean_processor_the_requests_the_sdks_processor_sends(
    monkeypatch, recording, protocol
):
    module = importlib.import_module(EXPORTERS[protocol])
    from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans

    monkeypatch.setattr(module, "encode_spans", encode_spans)  # the SDK's processor: the SDK's encoder
    sdk = delivered(BatchSpanProcessor, protocol, recording)
    ours = delivered(EncodingBatchSpanProcessor, protocol, recording)
    assert len(sdk) == 1 and len(sdk[0].resource_spans[0].scope_spans) == 2
    assert ours == sdk


def test_a_full_queue_drops_the_ending_span_before_encoding_it_and_logs_no_record_for_it(monkeypatch, recording):
    encoded = []
    encode_span = _otlp_encoding.encode_span
    monkeypatch.setattr(_otlp_encoding, "encode_span", lambda span: encoded.append(span.name) or encode_span(span))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("opentelemetry.sdk._shared_internal").addHandler(handler)
    made, module = exporter("grpc", recording)
    _otlp_encoding.install(module.__name__)
    provider = TracerProvider(resource=RESOURCE)
    counted = parts.counting(EncodingBatchSpanProcessor, "on_end", "spans")  # as from_env.tracer_provider makes it
    processor = counted(made, max_queue_size=3, max_export_batch_size=3, schedule_delay_millis=60_000)
    processor._batch_processor._worker_awaken.set = lambda: None  # the export thread sleeps: the queue stays full
    provider.add_span_processor(processor)
    try:
        tracer = provider.get_tracer("t")
        for number in range(5):
            tracer.start_span(f"span {number}").end()
        assert encoded == ["span 0", "span 1", "span 2"]  # the last two were dropped, never encoded
        assert processor._drops.total == 2  # counted by _sdk's wrapper, said once a minute
        assert processor.force_flush()
    finally:
        del processor._batch_processor._worker_awaken.set  # awake again: shutdown need not wait out its bound
        provider.shutdown()
        logging.getLogger("opentelemetry.sdk._shared_internal").removeHandler(handler)
    assert [s.name for s in recording.spans] == ["span 0", "span 1", "span 2"]
    assert [r.getMessage() for r in records if "Queue full" in r.getMessage()] == []


def test_unsampled_spans_are_neither_encoded_nor_queued(monkeypatch, recording):
    encoded = []
    monkeypatch.setattr(_otlp_encoding, "encode_span", encoded.append)
    made, _ = exporter("grpc", recording)
    provider = TracerProvider(resource=RESOURCE, sampler=ALWAYS_OFF)
    processor = EncodingBatchSpanProcessor(made)
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("dropped").end()
    assert encoded == [] and len(processor._batch_processor._queue) == 0
    provider.shutdown()


def test_a_failed_grpc_export_retries_with_the_bytes_it_encoded_once(monkeypatch):
    """Collector down: each retry sends the batch's bytes again, never encodes it again."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed when the block ends: nothing listens
    encodings = []
    encode_request = _otlp_encoding.encode_request
    monkeypatch.setattr(_otlp_encoding, "encode_request", lambda items: encodings.append(1) or encode_request(items))
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    made = OTLPSpanExporter(endpoint=dead, timeout=2.5)
    attempts = []
    assert _otlp_encoding.send_bytes(made)
    translate = made._translate_data
    made._translate_data = lambda data: attempts.append(1) or translate(data)
    span = TracerProvider(resource=RESOURCE).get_tracer("t").start_span("lost")
    span.end()
    item = (span.resource, span.instrumentation_scope, _otlp_encoding.encode_span(span))  # as the processor queues it
    from opentelemetry.sdk.trace.export import SpanExportResult

    assert made.export([item]) is SpanExportResult.FAILURE
    made.shutdown()
    assert len(attempts) >= 2 and encodings == [1]


def test_the_lean_processor_serves_only_while_the_sdks_internal_metrics_are_off(monkeypatch):
    monkeypatch.delenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", raising=False)
    assert _span_export.usable()
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    assert not _span_export.usable()


def test_a_full_queue_inherited_from_a_parent_is_renewed_not_dropped_into(monkeypatch, recording):
    """A child forked with no fork hook run (the SDK then renews its queue at the first record,
    seeing another pid) must not drop every span because the parent's queue it copied was full."""
    made, module = exporter("grpc", recording)
    _otlp_encoding.install(module.__name__)
    provider = TracerProvider(resource=RESOURCE)
    processor = EncodingBatchSpanProcessor(made, max_queue_size=2, max_export_batch_size=2, schedule_delay_millis=6e4)
    processor._batch_processor._worker_awaken.set = lambda: None
    provider.add_span_processor(processor)
    try:
        tracer = provider.get_tracer("t")
        for number in range(2):
            tracer.start_span(f"parent {number}").end()
        batch = processor._batch_processor
        assert len(batch._queue) == 2  # full
        batch._pid = -1  # as in a child that no fork hook told
        tracer.start_span("child").end()
        assert batch._pid == os.getpid() and len(batch._queue) == 1  # renewed, the child's span queued
    finally:
        provider.shutdown()
