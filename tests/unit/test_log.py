"""Rate-limited, secret-masked exporter logs."""

from __future__ import annotations

import logging

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
