"""Rate-limited, secret-masked exporter logs."""

from __future__ import annotations

import logging
import time

from otel_launch._runtime._log import RateLimitFilter


def record(msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord("opentelemetry.exporter", logging.WARNING, __file__, 1, msg, args, None)


def test_one_record_per_template_per_interval_then_a_count(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("otel_launch._runtime._log.time.monotonic", lambda: clock[0])
    limit = RateLimitFilter(interval=60)
    assert limit.filter(record("Failed to export to %s", "http://a"))
    assert not any(limit.filter(record("Failed to export to %s", "http://a")) for _ in range(5))
    assert limit.filter(record("another message"))
    clock[0] += 61
    again = record("Failed to export to %s", "http://a")
    assert limit.filter(again)
    assert again.getMessage() == "Failed to export to http://a (5 similar messages in the last 60s suppressed)"


def test_urls_with_secrets_are_masked():
    masked = record("exporting to %s failed", "https://user:hunter2@collector:4318/v1/traces")
    assert RateLimitFilter().filter(masked)
    assert masked.getMessage() == "exporting to https://user:***@collector:4318/v1/traces failed"


def test_trace_and_metric_retries_are_counted_apart(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("otel_launch._runtime._log.time.monotonic", lambda: clock[0])
    limit = RateLimitFilter(interval=60)
    template = "Transient error %s encountered while exporting %s to %s, retrying in %.2fs."
    assert limit.filter(record(template, "UNAVAILABLE", "traces", "h:1", 1.0))
    assert limit.filter(record(template, "UNAVAILABLE", "metrics", "h:1", 1.0))  # not hidden by traces
    for _ in range(3):
        assert not limit.filter(record(template, "UNAVAILABLE", "traces", "h:1", 1.0))
    assert not limit.filter(record(template, "UNAVAILABLE", "metrics", "h:1", 1.0))
    clock[0] += 61
    traces, metrics = record(template, "X", "traces", "h:1", 1.0), record(template, "X", "metrics", "h:1", 1.0)
    assert limit.filter(traces) and limit.filter(metrics)
    assert traces.getMessage().endswith("(3 similar messages in the last 60s suppressed)")
    assert metrics.getMessage().endswith("(1 similar messages in the last 60s suppressed)")


def test_configured_header_values_and_schemeless_passwords_are_hidden(monkeypatch):
    from otel_launch._runtime import _log

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "authorization=Bearer%20tok-12345,x=ab")
    monkeypatch.setattr(_log, "_secrets", {})
    masked = record("Illegal header value %s for %s", "b'Bearer tok-12345'", "user:pw99@collector:4317")
    assert RateLimitFilter().filter(masked)
    text = masked.getMessage()
    assert "tok-12345" not in text and "pw99" not in text
    assert "user:***@collector:4317" in text


def test_authorization_values_otel_pairs_and_slash_passwords_are_hidden(monkeypatch):
    """Not this process's header value: masked by shape (the credential after the scheme too)."""
    from otel_launch._runtime import _log

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_HEADERS", raising=False)
    monkeypatch.setattr(_log, "_secrets", {})
    masked = record(
        "headers %s; target %s, %s", "Authorization=Bearer TOK12345", "u:Pw/Sec2@collector:4317", "OTEL_X_TOKEN=Tk9"
    )
    assert RateLimitFilter().filter(masked)
    assert masked.getMessage() == "headers Authorization=***; target u:***@collector:4317, OTEL_X_TOKEN=***"


def test_the_sdks_queue_full_line_is_replaced_by_ours():
    assert not RateLimitFilter().filter(record("Queue full, dropping %s.", "Span"))


def test_drop_report_says_how_many_once_an_interval_and_at_the_end(monkeypatch, capsys):
    from otel_launch._runtime._log import DropReport

    clock = [100.0]
    monkeypatch.setattr("otel_launch._runtime._log.time.monotonic", lambda: clock[0])
    report = DropReport("spans", interval=60)
    report.dropped()
    for _ in range(100):  # one a second
        clock[0] += 1
        report.dropped()
    clock[0] += 20
    report.flush()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("otel-launch: warning: the export queue is full, dropping spans")
    assert lines[1:] == [
        "otel-launch: warning: dropped 60 spans in the last 60 s: the export queue is full",
        "otel-launch: warning: dropped 40 spans in the last 60 s: the export queue is full",
    ]
    assert report.total == 101


def test_counting_batch_processor_counts_what_the_real_sdk_queue_drops(capsys):
    """Runs on the SDK's BatchSpanProcessor: fails the day its queue internals change."""
    import threading

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

    from otel_launch._runtime.sdk.parts import counting

    release, exported = threading.Event(), []

    class StuckExporter:
        def export(self, spans):
            exported.extend(spans)
            release.wait(10)
            return SpanExportResult.SUCCESS

        def shutdown(self):
            pass

    processor = counting(BatchSpanProcessor, "on_end", "spans")(
        StuckExporter(), max_queue_size=4, max_export_batch_size=2, schedule_delay_millis=10_000
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for index in range(2):  # a full batch: the worker takes it and is stuck exporting it
        tracer.start_span(f"s{index}").end()
    deadline = time.monotonic() + 10
    while len(exported) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    for index in range(48):  # 4 fill the queue, 44 are dropped
        tracer.start_span(f"t{index}").end()
    assert len(processor._batch_processor._queue) == 4
    assert processor._drops.total == 44
    release.set()
    provider.shutdown()
    assert "the export queue is full, dropping spans" in capsys.readouterr().err
