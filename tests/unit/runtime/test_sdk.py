"""The exporter wrapper: what a failed export held is freed at once, not at the next full GC."""

from __future__ import annotations

import gc
import socket
import weakref
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_launch._runtime.sdk.from_env import PerProcessExporter


@pytest.fixture
def dead_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A 127.0.0.1 port that refuses connections: bound (so nobody else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")  # seconds, retries included
        yield endpoint


def finished_spans(count: int) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)  # an atexit hook would keep the spans alive
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for number in range(count):
        tracer.start_span("GET /health/", attributes={"net.peer.port": 40000 + number}).end()
    spans = list(exporter.get_finished_spans())
    exporter.clear()
    return spans


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_failed_export_leaves_nothing_for_the_cycle_collector(dead_endpoint: str, protocol: str) -> None:
    exporter = PerProcessExporter("traces", protocol)
    batch = finished_spans(64)
    first_span = weakref.ref(batch[0])
    gc.collect()
    gc.disable()  # what a busy app looks like between its rare full collections
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        assert exporter.export(batch) is SpanExportResult.FAILURE
        del batch
        assert first_span() is None, "the failed batch is still held (by a reference cycle)"
        gc.collect()
        left = sorted({type(thing).__name__ for thing in gc.garbage if isinstance(thing, BaseException)})
        assert left == [], f"export errors left in reference cycles: {left}"
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        exporter.shutdown()
