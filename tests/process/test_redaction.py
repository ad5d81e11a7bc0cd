"""Private data in spans, through the real launcher: query values, captured headers, SQL, Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, closed_port, launcher, run

pytest.importorskip("django")
pytestmark = pytest.mark.process
SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def _env(receiver, workdir, **extra: str) -> dict[str, str]:
    return clean_env(
        **{
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint,
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "shop",
            "SHOP_DB": str(workdir / "shop.sqlite3"),
            **extra,
        }
    )


def _server_span(receiver, workdir, query: str, **extra: str):
    args = [*launcher(), PYTHON, str(TARGETS / "django_query.py"), str(SHOP), query]
    result = run(args, _env(receiver, workdir, **extra), workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200"
    assert receiver.wait_for(
        lambda r: any(s.scope == "opentelemetry.instrumentation.django" for s in r.spans), timeout=10
    )
    (server,) = [s for s in receiver.spans if s.scope == "opentelemetry.instrumentation.django"]
    return server


def _url_values(span) -> dict[str, str]:
    keys = ("http.target", "http.url", "url.full", "url.query")
    return {key: span.attributes[key] for key in keys if key in span.attributes}


def test_secret_query_values_and_headers_are_redacted_on_a_real_django_request(receiver, workdir):
    server = _server_span(
        receiver,
        workdir,
        "token=abc123&page=2&api_key=k-42",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="authorization,x-team",
    )
    urls = _url_values(server)
    assert urls, server.attributes  # the query is recorded somewhere
    for value in urls.values():
        assert "abc123" not in value and "k-42" not in value
        assert "token=***" in value and "page=2" in value and "api_key=***" in value
    headers = {k: v for k, v in server.attributes.items() if k.startswith("http.request.header.")}
    assert headers, server.attributes
    assert "HeaderSecret99" not in repr(headers)
    assert any("web" in repr(v) for k, v in headers.items() if "team" in k)  # not secret: kept


def test_redaction_off_keeps_the_query_as_sent(receiver, workdir):
    server = _server_span(receiver, workdir, "token=abc123&page=2", OTEL_LAUNCH_REDACT="none")
    assert any("token=abc123" in value for value in _url_values(server).values())


def test_own_pattern_replaces_the_default(receiver, workdir):
    server = _server_span(receiver, workdir, "token=abc123&q=shoes", OTEL_LAUNCH_REDACT="^q$")
    values = _url_values(server).values()
    assert any("q=***" in value and "token=abc123" in value for value in values)


def test_sql_and_redis_spans_never_carry_parameter_values(receiver, workdir):
    pytest.importorskip("redis")
    args = [*launcher(), PYTHON, str(TARGETS / "secrets_in_queries.py"), str(closed_port())]
    result = run(args, _env(receiver, workdir), workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: any(s.name == "handler" for s in r.spans), timeout=10)
    spans = receiver.spans
    insert = next(s for s in spans if "INSERT" in s.attributes.get("db.statement", ""))
    redis_span = next(s for s in spans if s.attributes.get("db.system") == "redis")
    assert redis_span.attributes["db.statement"] == "SET ? ?"
    assert "VALUES (?, ?)" in insert.attributes["db.statement"]
    recorded = repr([(s.name, s.attributes, s.events) for s in spans])
    for secret in ("SqlSecret77", "RedisSecret88", "session:ann"):
        assert secret not in recorded


ERROR_SECRETS = ("TokSecret11", "PwSecret22", "KeySecret33")


def test_real_request_errors_never_carry_secrets_in_events_statuses_or_log_records(receiver, workdir):
    """urllib3's "Max retries exceeded with url: /p?token=...", a password before the host in a
    stack trace's source line, a DSN in an app's own message: each recorded on spans (exception
    events, error status descriptions) and exported as log records (body, exception attributes)."""
    pytest.importorskip("requests")
    args = [*launcher(), PYTHON, str(TARGETS / "secrets_in_errors.py"), str(closed_port())]
    env = _env(receiver, workdir, OTEL_LOGS_EXPORTER="otlp")
    result = run(args, env, workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(
        lambda r: sum(s.name.startswith("fetch-") for s in r.spans) == 3 and len(r.logs) >= 3, timeout=10
    )
    fetches = {s.name: s for s in receiver.spans if s.name.startswith("fetch-")}
    events = [event for span in fetches.values() for event in span.events if event["name"] == "exception"]
    assert len(events) >= 3 and all(s.status == "ERROR" for s in fetches.values())
    # The secrets were there to leak: masked in place, the rest of the message is kept.
    assert "url: /p?token=***&page=2" in fetches["fetch-requests"].status_message
    assert "url: /p?token=***&page=2" in events[0]["exception.message"]
    assert "url: /x?api_key=***" in fetches["fetch-urllib3"].status_message
    assert "postgresql://ann:***@db/shop" in fetches["fetch-app"].status_message
    logs = [log for log in receiver.logs if "failed" in str(log.body)]
    assert len(logs) == 3 and all("exception.stacktrace" in log.attributes for log in logs)
    assert "token=***" in logs[0].attributes["exception.message"]
    recorded = repr([(s.name, s.attributes, s.events, s.status_message) for s in receiver.spans])
    recorded += repr([(log.body, log.attributes) for log in receiver.logs])
    assert "ann:***@127.0.0.1" in recorded  # the source line of requests' call, in stack traces
    for secret in ERROR_SECRETS:
        assert secret not in recorded


@pytest.mark.parametrize(
    "how", ["zero-code", "not-sampled", "app-also-instruments"], ids=["zero-code", "not-sampled", "contrib"]
)
def test_the_duration_metric_of_a_request_with_no_route_keeps_its_path_not_its_query(receiver, workdir, how):
    """The old-convention ``http.server.duration`` records ``http.target``: the route when there
    is one, else (a 404) the raw target, whose query may hold a token."""
    args = [*launcher(), *(["--sampler", "always_off"] if how == "not-sampled" else []), PYTHON]
    args += [str(TARGETS / "django_unrouted.py"), str(SHOP)]
    env = _env(receiver, workdir, OTEL_METRICS_EXPORTER="otlp")
    result = run(args + (["--app-instruments-django"] if how == "app-also-instruments" else []), env, workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["404", "200"]
    assert receiver.wait_for(lambda r: any(p.metric == "http.server.duration" for p in r.points), timeout=10)
    targets = sorted(p.attributes.get("http.target") for p in receiver.points if p.metric == "http.server.duration")
    assert targets == ["/no-such-page/", "/orders/<int:pk>/"]
    assert "MetricSecret44" not in repr([(p.metric, p.attributes) for p in receiver.points])


@pytest.mark.parametrize("mode", ["", "http/dup"], ids=["old", "dup"])
def test_outgoing_http_metrics_never_carry_secret_query_values(receiver, workdir, mode):
    """urllib's instrumentation records the URL (``http.url``) on its old-convention metrics,
    redacted by its own short list (signatures), so a token passed; the other clients record no URL."""
    pytest.importorskip("httpx")
    env = _env(receiver, workdir, OTEL_METRICS_EXPORTER="otlp", OTEL_SEMCONV_STABILITY_OPT_IN=mode)
    result = run([*launcher(), PYTHON, str(TARGETS / "client_metrics_secrets.py")], env, workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: any(p.metric == "http.client.duration" for p in r.points), timeout=10)
    urls = {p.attributes["http.url"] for p in receiver.points if "http.url" in p.attributes}
    assert urls and all(url.endswith("/urllib?token=***&page=2") for url in urls), urls
    assert "ClientSecret55" not in repr([(p.metric, p.attributes) for p in receiver.points])
