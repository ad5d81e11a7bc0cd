"""The shop on granian (Rust HTTP server, Python workers), WSGI and ASGI with two workers, under
otel-launch: one server span per request, its SQL in it, metrics from every worker as itself."""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from tests.e2e.shop import BIN, points_by_pid, server_spans, telemetry_noise
from tests.helpers import SERVICES_USED, free_port

pytestmark = pytest.mark.e2e
REQUESTS = [f"/orders/{pk}/" for pk in range(1, 11)] * 2 + ["/orders/"] * 10
APPS = {"wsgi": "shop.wsgi:application", "asgi": "shop.asgi:application"}


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_granian_workers_one_server_span_per_request_and_metrics_from_each(shop, interface):
    if not (BIN / "granian").exists():
        pytest.skip("granian is not installed (the test extra installs it)")
    port = free_port()
    command = [str(BIN / "granian"), "--interface", interface, "--workers", "2", "--port", str(port), APPS[interface]]
    SERVICES_USED.append(f"granian --interface {interface} --workers 2")
    web = shop.serve(f"granian-{interface}", command, port, "shop-web", OTEL_BSP_SCHEDULE_DELAY="100")
    sent: list[str] = []
    statuses: list[int] = []

    def two_workers_served() -> bool:
        sent.extend(REQUESTS)
        statuses.extend(shop.concurrently(web.port, REQUESTS))
        return len({s.resource["process.pid"] for s in server_spans(shop.receiver)}) >= 2

    # Spans exported while serving (100 ms batches) show when both workers have served.
    from tests.helpers import wait_until

    wait_until(two_workers_served, 60, "both granian workers serving", interval=0)
    assert shop.stop(web, signal.SIGTERM, timeout=30) == 0, shop.output(web)[-3000:]
    assert statuses == [200] * len(sent)

    spans = [s for s in server_spans(shop.receiver) if s.name != "GET /health/"]
    assert Counter(s.name for s in spans) == Counter(
        "GET /orders/<int:pk>/" if path != "/orders/" else "GET /orders/" for path in sent
    )
    if interface == "wsgi":  # ASGI: a thread's first connection may miss its wrapper (issue 22, item 6)
        lists = [s for s in spans if s.name == "GET /orders/"]
        selects = {s.parent_span_id for s in shop.receiver.spans if s.name == "SELECT"}
        assert all(s.span_id in selects for s in lists)  # each list's query, inside its request
    served_by = {s.resource["process.pid"] for s in spans}
    assert web.pid not in served_by and len(served_by) >= 2
    reported = points_by_pid(shop.receiver, "http.server.duration")
    assert served_by <= set(reported)
    assert len({next(iter(reported[pid])) for pid in served_by}) == len(served_by)
    assert telemetry_noise(shop.output(web)) == []
