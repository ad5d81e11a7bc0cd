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

from otel_launch._runtime.sdk.parts import PerProcessExporter


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


def test_the_signals_exporters_are_built_one_at_a_time():
    """The span, metric and log export threads build their exporters at their first export: two
    builds at once (two threads importing the OTLP exporter modules) can meet Python's import
    deadlock detection, and one export fails on a partially initialised module."""
    import threading

    first_building = threading.Event()
    second_building = threading.Event()
    overlapped: list[bool] = []

    def make_first() -> InMemorySpanExporter:
        first_building.set()
        # Bounded: the second build starts within this wait only if nothing holds it back.
        overlapped.append(second_building.wait(timeout=0.5))
        return InMemorySpanExporter()

    def make_second() -> InMemorySpanExporter:
        second_building.set()
        return InMemorySpanExporter()

    first = PerProcessExporter("traces", "console", make=make_first)
    second = PerProcessExporter("logs", "console", make=make_second)
    threads = [threading.Thread(target=first.export, args=([],))]
    threads[0].start()
    assert first_building.wait(timeout=10)
    threads.append(threading.Thread(target=second.export, args=([],)))
    threads[1].start()
    for thread in threads:
        thread.join(timeout=10)
    assert overlapped == [False]
    assert second_building.is_set()
