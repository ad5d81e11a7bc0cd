"""A contrib or SDK release without an internal otel-launch uses: one warning line, the contrib's or
SDK's own behaviour, and the app runs on (see otel_launch/_runtime/_compat.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PYTHON, TARGETS, clean_env, launcher, run

pytestmark = pytest.mark.process
SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
WITHOUT = str(TARGETS / "without_internal.py")
DJANGO_SCOPE = "opentelemetry.instrumentation.django"


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("otel-launch: warning:")]


def _django_request(receiver, workdir: Path, internal: str, *args: str):
    """One request through Django's test client, with ``internal`` gone once the contrib's Django
    modules were imported (they hold their own reference to it)."""
    pytest.importorskip("django")
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_SERVICE_NAME="shop",
        SHOP_DB=str(workdir / "shop.sqlite3"),
    )
    target = [WITHOUT, "--after", "opentelemetry.instrumentation.django", internal]
    result = run([*launcher(), PYTHON, *target, str(TARGETS / "django_client.py"), str(SHOP), *args], env, workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200"
    assert receiver.wait_for(lambda r: any(s.scope == DJANGO_SCOPE for s in r.spans), timeout=10)
    (server,) = [span for span in receiver.spans if span.scope == DJANGO_SCOPE]
    return server, _warnings(result.stderr)


def test_without_an_internal_of_our_request_path_the_contribs_middleware_serves(receiver, workdir):
    server, warnings = _django_request(receiver, workdir, "opentelemetry.instrumentation._semconv:_set_status")
    assert len(warnings) == 1, warnings
    assert "django-request: opentelemetry.instrumentation._semconv:_set_status not found" in warnings[0]
    assert "the contrib's Django middleware serves instead" in warnings[0]
    # The contrib's span as it names it (our route fix needs the same names), with our SQL inside.
    assert server.name == "GET orders/<int:pk>/"
    children = [span.name for span in receiver.spans if span.parent_span_id == server.span_id]
    assert "SELECT" in children


def test_without_an_internal_of_the_contrib_middleware_it_serves_unfixed(receiver, workdir):
    internal = "opentelemetry.instrumentation._semconv:_get_schema_url"  # the fixes use our request path's names
    server, warnings = _django_request(receiver, workdir, internal, "--app-instruments-django")
    assert len(warnings) == 1 and "django-contrib-fixes: " in warnings[0], warnings
    assert server.name == "GET orders/<int:pk>/"  # the contrib's name: the route fix is off


def test_without_the_sdks_encoder_internals_spans_go_out_through_the_sdks_encoder(receiver, workdir):
    after = "opentelemetry.exporter.otlp.proto.common._internal.trace_encoder"  # the SDK's keeps its reference
    internal = "opentelemetry.exporter.otlp.proto.common._internal:_encode_instrumentation_scope"
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none"
    )
    target = [WITHOUT, "--after", after, internal, str(TARGETS / "span_and_exit.py"), "hello"]
    result = run([*launcher(), PYTHON, *target], env, workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: [s.name for s in r.spans] == ["hello"], timeout=10)
    warnings = _warnings(result.stderr)
    assert len(warnings) == 1 and "otlp-encoding: " in warnings[0] and "the SDK's OTLP span encoder" in warnings[0]
