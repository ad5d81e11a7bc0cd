"""Secret-looking query values and captured headers out of spans: pure functions, then the
processor on the real SDK (it relies on ``ReadableSpan._attributes``)."""

from __future__ import annotations

import contextlib
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_launch._core.masking import REDACT_PATTERN, mask_query, mask_url
from otel_launch._runtime._scrub import (
    ScrubbingSpanProcessor,
    compile_pattern,
    redact_attributes,
)

SECRET = compile_pattern(REDACT_PATTERN)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("token", True),
        ("access_token", True),
        ("csrftoken", True),
        ("api_key", True),
        ("apiKey", True),
        ("api-key", True),
        ("key", True),
        ("password", True),
        ("passwd", True),
        ("pwd", True),
        ("pass", True),
        ("client_secret", True),
        ("auth", True),
        ("Authorization", True),
        ("sig", True),
        ("X-Amz-Signature", True),
        ("X-Amz-Credential", True),
        ("AWSAccessKeyId", True),
        ("sessionid", True),
        ("code", True),
        ("jwt", True),
        ("page", False),
        ("q", False),
        ("author", False),
        ("passenger", False),
        ("monkey", False),
        ("zip_code", False),
        ("sort", False),
    ],
)
def test_default_pattern_matches_secret_looking_names_only(name, secret):
    assert bool(SECRET.search(name)) is secret


@pytest.mark.parametrize(
    ("query", "redacted"),
    [
        ("token=abc123", "token=***"),
        ("page=2&token=abc123&q=shoes", "page=2&token=***&q=shoes"),
        ("Password=x&password=y", "Password=***&password=***"),
        ("%74oken=abc", "%74oken=***"),  # the name is matched decoded
        ("flag&token=", "flag&token="),  # nothing to hide
        ("token=a=b", "token=***"),
    ],
)
def test_secret_query_values_are_masked(query, redacted):
    assert mask_query(query, SECRET) == redacted


def test_nothing_secret_returns_the_same_object():
    query = "page=2&q=shoes"
    assert mask_query(query, SECRET) is query
    url = "https://shop.example/orders/?page=2#top"
    assert mask_url(url, SECRET) is url


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("/orders/?token=abc123&page=2", "/orders/?token=***&page=2"),
        ("https://api.example/v1?sig=abc#frag", "https://api.example/v1?sig=***#frag"),
        ("https://user:pw@api.example/x?page=1", "https://user:***@api.example/x?page=1"),
        ("/plain/path", "/plain/path"),
    ],
)
def test_secret_url_parts_are_masked(url, redacted):
    assert mask_url(url, SECRET) == redacted


def test_a_password_before_the_host_is_masked_in_a_url_without_a_query():
    changes = redact_attributes({"url.full": "https://user:hunter2@api.example/x"}, SECRET, headers=False)
    assert changes == {"url.full": "https://user:***@api.example/x"}


def _provider(pattern: str, environ: dict[str, str]) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(ScrubbingSpanProcessor(pattern, environ))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_processor_scrubs_what_exporters_receive_set_at_start_or_after():
    provider, exporter = _provider(
        REDACT_PATTERN, {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "authorization"}
    )
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "GET", attributes={"http.target": "/o/?token=abc&page=2", "url.query": "token=abc&page=2"}
    ) as span:
        span.set_attribute("url.full", "http://h/o/?api_key=k&page=2")
        span.set_attribute("http.request.header.authorization", ("Bearer abc",))
        span.set_attribute("http.request.header.x_team", ("web",))
    (exported,) = exporter.get_finished_spans()
    assert dict(exported.attributes) == {
        "http.target": "/o/?token=***&page=2",
        "url.query": "token=***&page=2",
        "url.full": "http://h/o/?api_key=***&page=2",
        "http.request.header.authorization": ("***",),
        "http.request.header.x_team": ("web",),
    }
    assert exported.dropped_attributes == 0


def test_non_secret_query_is_left_as_recorded():
    provider, exporter = _provider(REDACT_PATTERN, {})
    with provider.get_tracer("test").start_as_current_span("GET", attributes={"http.url": "http://h/?page=1"}):
        pass
    assert exporter.get_finished_spans()[0].attributes["http.url"] == "http://h/?page=1"


def test_exception_events_and_status_descriptions_are_scrubbed_and_the_live_span_kept():
    provider, exporter = _provider(REDACT_PATTERN, {})
    tracer = provider.get_tracer("test")
    message = "Max retries exceeded with url: /p?token=abc123&page=2 (via https://ann:pw99@proxy:3128)"
    with pytest.raises(ConnectionError), tracer.start_as_current_span("fetch") as live:
        live.add_event("retry", {"attempt": 2, "url": "http://h/p?sig=s1g", "tags": ("password=pw77", "x")})
        raise ConnectionError(message)
    (exported,) = exporter.get_finished_spans()
    retry, exception = exported.events
    assert dict(retry.attributes) == {"attempt": 2, "url": "http://h/p?sig=***", "tags": ("password=***", "x")}
    assert exception.attributes["exception.type"] == "ConnectionError"
    masked = "Max retries exceeded with url: /p?token=***&page=2 (via https://ann:***@proxy:3128)"
    assert exception.attributes["exception.message"] == masked
    assert masked in exception.attributes["exception.stacktrace"]
    assert exported.status.description == f"ConnectionError: {masked}"
    assert exported.status.status_code.name == "ERROR"
    assert exported.dropped_events == 0
    assert "abc123" in live.events[1].attributes["exception.message"]  # the app's own span as it was


def test_an_event_with_nothing_secret_is_the_same_object():
    provider, exporter = _provider(REDACT_PATTERN, {})
    with provider.get_tracer("test").start_as_current_span("s") as live:
        live.add_event("note", {"page": "2", "url": "http://h/?page=2"})
    (exported,) = exporter.get_finished_spans()
    assert exported.events[0] is live.events[0]


@contextlib.contextmanager
def _scrubbed_logger(name: str):
    """A logger whose records go through the scrubber to an in-memory exporter; its SDK handler is
    removed afterwards (left behind, logging.shutdown would flush it at exit)."""
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    from otel_launch._runtime._scrub import ScrubbingLogRecordProcessor

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(ScrubbingLogRecordProcessor(REDACT_PATTERN))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger(name)
    logger.propagate = False
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        yield logger, exporter
    finally:
        logger.removeHandler(handler)
        handler.flush = lambda: None  # SDK 1.43's flush starts a thread, refused at exit on Python 3.12+


def test_exported_log_records_are_scrubbed_body_and_exception_attributes():
    with _scrubbed_logger("test_scrub.records") as (logger, exporter):
        try:
            raise RuntimeError("connect failed: host=db password=pw88 dbname=shop")
        except RuntimeError:
            logger.exception("GET %s failed", "https://ann:pw99@api.example/x?api_key=k42&page=2", extra={"dsn": "x"})
    (data,) = exporter.get_finished_logs()
    record = getattr(data, "log_record", data)
    assert record.body == "GET https://ann:***@api.example/x?api_key=***&page=2 failed"
    assert record.attributes["exception.message"] == "connect failed: host=db password=*** dbname=shop"
    assert "pw88" not in record.attributes["exception.stacktrace"]
    assert record.attributes["dsn"] == "x"


def test_otel_named_pairs_authorization_values_and_slash_passwords_are_scrubbed_from_spans_and_logs():
    """An ``OTEL_*=`` pair is masked in exported data (only the doctor's rows keep theirs), so is
    an Authorization value's credential after its scheme, and a password holding a ``/``."""

    message = "OTEL_FOO_PASSWORD=PwSecret1 sent Authorization=Bearer TOK12345 to https://u:Pw/Sec2@h/x"
    masked = "OTEL_FOO_PASSWORD=*** sent Authorization=*** to https://u:***@h/x"
    provider, exporter = _provider(REDACT_PATTERN, {})
    with pytest.raises(RuntimeError), provider.get_tracer("test").start_as_current_span("fetch"):
        raise RuntimeError(message)
    (exported,) = exporter.get_finished_spans()
    assert exported.events[0].attributes["exception.message"] == masked
    assert exported.status.description == f"RuntimeError: {masked}"

    with _scrubbed_logger("test_scrub.otel_pairs") as (logger, logs):
        logger.warning(message)
    (data,) = logs.get_finished_logs()
    assert getattr(data, "log_record", data).body == masked
