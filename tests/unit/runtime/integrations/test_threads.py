"""The trace context carried into threads and thread pools (otel_launch/_runtime/integrations/threads.py)."""

from __future__ import annotations

import concurrent.futures.thread
import threading

import pytest
from opentelemetry import baggage, context

from otel_launch._runtime.integrations import threads


@pytest.fixture(autouse=True)
def carried(monkeypatch):
    """The real classes, patched for the test and restored after it."""
    monkeypatch.setattr(threading.Thread, "start", threading.Thread.start)
    executor = concurrent.futures.thread.ThreadPoolExecutor
    monkeypatch.setattr(executor, "submit", executor.submit)
    threads.on_import(context)


def _current_baggage() -> object:
    return baggage.get_baggage("request")


def test_submitted_work_runs_in_the_submitters_context_and_the_pools_threads_keep_none():
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        token = context.attach(baggage.set_baggage("request", "first"))
        try:
            inside = pool.submit(_current_baggage).result()
        finally:
            context.detach(token)
        outside = pool.submit(_current_baggage).result()  # the same worker thread, no context handed over
    assert (inside, outside) == ("first", None)


def test_a_thread_subclass_with_its_own_run_gets_the_starters_context():
    seen = []

    class Worker(threading.Thread):
        def run(self):
            seen.append(_current_baggage())

    token = context.attach(baggage.set_baggage("request", "started-in"))
    try:
        worker = Worker()
        worker.start()
    finally:
        context.detach(token)
    worker.join()
    plain = threading.Thread(target=lambda: seen.append(_current_baggage()))
    plain.start()
    plain.join()
    assert seen == ["started-in", None]
    assert "run" not in vars(worker)  # the thread no longer holds the context


def test_with_no_context_the_function_is_submitted_as_it_is(monkeypatch):
    executor = concurrent.futures.thread.ThreadPoolExecutor
    submitted = []
    original = executor.submit.__wrapped__  # the standard library's

    def recording(self, fn, /, *args, **kwargs):
        submitted.append(fn)
        return original(self, fn, *args, **kwargs)

    monkeypatch.setattr(executor, "submit", recording)
    threads._carry_into_pools(concurrent.futures.thread)  # wraps the recording submit
    with executor(max_workers=1) as pool:
        assert pool.submit(len, ()).result() == 0
        token = context.attach(baggage.set_baggage("request", "r"))
        try:
            assert pool.submit(_current_baggage).result() == "r"
        finally:
            context.detach(token)
    assert submitted[0] is len and submitted[1] is not _current_baggage


def test_the_sdks_export_thread_started_inside_a_span_keeps_no_context():
    """The export thread a fork's renewal starts (inside the app's span, at its first span in a
    uWSGI worker): it serves the whole process, and must not export inside the app's trace."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

    seen = []

    class Exporter:
        def export(self, spans):
            seen.append((trace.get_current_span().get_span_context().is_valid, _current_baggage()))
            return SpanExportResult.SUCCESS

        def shutdown(self):
            pass

    provider = TracerProvider(shutdown_on_exit=False)
    token = context.attach(baggage.set_baggage("request", "the-apps"))
    try:
        with provider.get_tracer("app").start_as_current_span("the-apps-span"):
            processor = BatchSpanProcessor(Exporter())  # its thread starts here, inside the span
    finally:
        context.detach(token)
    provider.add_span_processor(processor)
    with provider.get_tracer("app").start_as_current_span("exported"):
        pass
    processor.shutdown()  # the worker thread's last export (force_flush would export in this thread)
    assert seen == [(False, None)]
