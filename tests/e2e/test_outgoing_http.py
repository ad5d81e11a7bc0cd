"""Two services, each a real gunicorn under otel-launch: a call from one to the other is one trace.

The shop runs twice: ``shop-front``, whose ``/call-downstream/`` view (or a Celery task it
enqueues) calls ``shop-back`` with requests or httpx, and ``shop-back``. The trace must hold
the front's server span, its CLIENT span, and the back's server span as the client's child.
"""

from __future__ import annotations

import pytest

from tests.e2e.shop import server_spans, service, telemetry_noise, traces
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e
CLIENT = 3  # SpanKind.CLIENT + 1 in OTLP numbering
SCOPES = {"requests": "opentelemetry.instrumentation.requests", "httpx": "opentelemetry.instrumentation.httpx"}


def downstream_calls(receiver) -> list:
    """The back's server spans that continue another service's trace (not our health probes)."""
    return [s for s in server_spans(receiver) if service(s) == "shop-back" and s.parent_span_id]


def assert_one_trace_through_both(receiver, client: str, first: str) -> None:
    (back,) = [s for s in downstream_calls(receiver) if s.trace_id in _traces_with_client(receiver, client)]
    trace = traces(receiver)[back.trace_id]
    (call,) = [s for s in trace if s.scope == SCOPES[client]]
    assert call.kind == CLIENT and call.name == "GET" and service(call) in ("shop-front", "shop-worker")
    url = call.attributes.get("http.url", call.attributes.get("url.full"))
    assert url.endswith("/health/")
    assert call.attributes.get("http.status_code", call.attributes.get("http.response.status_code")) == 200
    assert back.parent_span_id == call.span_id and back.name == "GET /health/"
    roots = [s for s in trace if not s.parent_span_id]
    assert [(service(s), s.name) for s in roots] == [("shop-front", first)]
    # Exactly one client span for the call: requests' urllib3 underneath adds none.
    assert len([s for s in trace if s.kind == CLIENT and s.scope.startswith("opentelemetry.instrumentation.url")]) == 0


def _traces_with_client(receiver, client: str) -> set[str]:
    return {s.trace_id for s in receiver.spans if s.scope == SCOPES[client]}


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_a_view_calling_another_service_is_one_trace(shop, client):
    back = shop.gunicorn("-w", "1", service="shop-back", OTEL_BSP_SCHEDULE_DELAY="100")
    downstream = {"SHOP_DOWNSTREAM_URL": f"http://127.0.0.1:{back.port}", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    front = shop.gunicorn("-w", "1", service="shop-front", **downstream)
    status, body = shop.request(front.port, "GET", f"/call-downstream/?client={client}")
    assert (status, body) == (200, b'{"status": 200}')
    wait_until(lambda: downstream_calls(shop.receiver), 30, "the back's server span")
    assert shop.stop(front) == 0 and shop.stop(back) == 0
    assert_one_trace_through_both(shop.receiver, client, "GET /call-downstream/")
    front_server = [s for s in server_spans(shop.receiver) if s.name == "GET /call-downstream/"]
    assert len(front_server) == 1
    assert telemetry_noise(shop.output(front)) == [] and telemetry_noise(shop.output(back)) == []


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_a_task_calling_another_service_stays_in_the_trace(shop, client):
    back = shop.gunicorn("-w", "1", service="shop-back", OTEL_BSP_SCHEDULE_DELAY="100")
    downstream = {"SHOP_DOWNSTREAM_URL": f"http://127.0.0.1:{back.port}"}
    front = shop.gunicorn("-w", "1", service="shop-front", **downstream)
    worker = shop.worker("--pool", "prefork", "--concurrency", "1", **downstream)
    status, _ = shop.request(front.port, "GET", f"/call-downstream/?client={client}&in=task")
    assert status == 202
    (execution,) = shop.wait_for_executions(1)
    assert execution["status"] == 200 and execution["client"] == client
    assert shop.stop(worker) == 0 and shop.stop(front) == 0 and shop.stop(back) == 0
    assert_one_trace_through_both(shop.receiver, client, "GET /call-downstream/")
    (back_span,) = downstream_calls(shop.receiver)
    trace = traces(shop.receiver)[back_span.trace_id]
    (call,) = [s for s in trace if s.scope == SCOPES[client]]
    (run,) = [s for s in trace if s.name == "run/orders.tasks.call_downstream"]
    assert call.parent_span_id == run.span_id and service(call) == "shop-worker"
    assert telemetry_noise(shop.output(worker)) == []
