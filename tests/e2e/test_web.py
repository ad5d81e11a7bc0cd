"""Django served every usual way, under otel-launch: exactly one server span per request."""

from __future__ import annotations

import json
import signal

import pytest

from tests.e2e.shop import BIN, points_by_pid, server_spans, telemetry_noise
from tests.helpers import PYTHON, free_port, wait_until

pytestmark = pytest.mark.e2e
REQUESTS = [f"/orders/{pk}/" for pk in range(1, 11)] * 2 + ["/orders/"] * 10


def status_code(span) -> int | None:
    return span.attributes.get("http.status_code", span.attributes.get("http.response.status_code"))


@pytest.mark.parametrize(
    "options",
    [
        ["-k", "sync"],
        ["-k", "gthread", "--threads", "4"],
        ["-k", "sync", "--preload"],
        ["-k", "sync", "--max-requests", "5"],
    ],
    ids=["sync", "gthread", "preload", "max-requests"],
)
def test_gunicorn_one_server_span_per_request_and_metrics_from_every_worker(shop, options):
    recycling = "--max-requests" in options
    # Workers pick connections as they like; to see both serve, batches are sent until spans
    # from two workers arrived, which needs spans exported while serving. Recycled workers
    # (--max-requests) keep the default batching: their spans must come from their exit flush.
    env = {} if recycling else {"OTEL_BSP_SCHEDULE_DELAY": "100"}
    web = shop.gunicorn("-w", "2", *options, **env)
    sent: list[str] = []
    statuses: list[int] = []

    def two_workers_served() -> bool:
        sent.extend(REQUESTS)
        statuses.extend(shop.concurrently(web.port, REQUESTS))
        return len({s.resource["process.pid"] for s in server_spans(shop.receiver)}) >= 2

    if not recycling:
        wait_until(two_workers_served, 30, "both gunicorn workers serving", interval=0)
    else:
        two_workers_served()
    assert shop.stop(web) == 0
    assert statuses == [200] * len(sent)

    spans = [s for s in server_spans(shop.receiver) if s.name != "GET /health/"]
    assert len(spans) == len(sent)
    assert sorted(s.name for s in spans) == sorted(
        "GET /orders/<int:pk>/" if path != "/orders/" else "GET /orders/" for path in sent
    )
    assert all(not s.parent_span_id for s in spans)
    # Every worker that served a request exported its duration metric at exit, as itself.
    served_by = {s.resource["process.pid"] for s in spans}
    assert len(served_by) >= (4 if recycling else 2)  # 30 requests, 5 per worker life
    reported = points_by_pid(shop.receiver, "http.server.duration")
    assert served_by <= set(reported)
    assert len({next(iter(reported[pid])) for pid in served_by}) == len(served_by)  # own service.instance.id
    assert telemetry_noise(shop.output(web)) == []


def test_errors_and_not_found(shop):
    web = shop.gunicorn("-w", "1")
    assert shop.request(web.port, "GET", "/fail/")[0] == 500
    assert shop.request(web.port, "GET", "/orders/999/")[0] == 404
    assert shop.request(web.port, "GET", "/no/such/page/")[0] == 404
    assert shop.stop(web) == 0
    by_name = {s.name: s for s in server_spans(shop.receiver)}
    failed = by_name["GET /fail/"]
    assert failed.status == "ERROR" and status_code(failed) == 500
    (exception,) = [e for e in failed.events if e["name"] == "exception"]
    assert exception["exception.type"] == "RuntimeError"
    assert "always fails" in exception["exception.message"]
    # A 404 is the client's error: named by its route, not an error of the server span.
    missing = by_name["GET /orders/<int:pk>/"]
    assert missing.status == "UNSET" and status_code(missing) == 404 and not missing.events
    assert by_name["GET"].status == "UNSET"  # no route matched: the method alone, as conventions say
    assert by_name["GET /orders/<int:pk>/"].attributes["http.route"] == "/orders/<int:pk>/"


def test_a_django_task_enqueued_by_a_view_runs_in_its_trace(shop):
    """Django 6's tasks framework: the shop's receipt, enqueued on Django's default backend (which
    runs it inside the enqueue), in the request's trace with its queue time and its query."""
    pytest.importorskip("django.tasks", reason="django.tasks is Django 6.0 and later")
    web = shop.gunicorn("-w", "1")
    status, body = shop.request(web.port, "POST", "/orders/1/receipt/")
    assert shop.stop(web) == 0
    assert status == 202, body
    result = json.loads(body)
    assert result["status"] == "SUCCESSFUL"
    (server,) = [s for s in server_spans(shop.receiver) if s.name == "POST /orders/<int:pk>/receipt/"]
    (enqueue,) = [s for s in shop.receiver.spans if s.name == "enqueue orders.receipts.email_receipt"]
    (run,) = [s for s in shop.receiver.spans if s.name == "run orders.receipts.email_receipt"]
    assert (enqueue.trace_id, enqueue.parent_span_id) == (server.trace_id, server.span_id)
    assert (run.trace_id, run.parent_span_id) == (server.trace_id, enqueue.span_id)
    assert run.attributes["messaging.message.id"] == enqueue.attributes["messaging.message.id"] == result["id"]
    assert run.attributes["django.task.status"] == "SUCCESSFUL"
    assert 0 <= run.attributes["django.task.queue_time"] < (run.start_ns - enqueue.start_ns) / 1e9 + 0.01
    assert [s.name for s in shop.receiver.spans if s.parent_span_id == run.span_id] == ["SELECT"]


def test_runserver_with_autoreload_spans_come_once_from_the_serving_process(shop):
    port = free_port()
    server = shop.serve("runserver", [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}"], port, "shop-dev")
    statuses = shop.concurrently(port, REQUESTS[:10], threads=2)
    # Ctrl-C reaches the whole foreground group: the reloader and the serving child.
    shop.stop_group(server, signal.SIGINT)
    assert statuses == [200] * 10
    spans = [s for s in server_spans(shop.receiver) if s.name != "GET /health/"]
    assert len(spans) == 10
    (serving_pid,) = {s.resource["process.pid"] for s in spans}
    assert serving_pid != server.pid  # the reloader's child, not the reloader
    assert not [s for s in shop.receiver.spans if s.name == "runserver"]


def test_uvicorn_workers_one_server_span_per_request(shop):
    port = free_port()
    command = [str(BIN / "uvicorn"), "shop.asgi:application", "--port", str(port), "--workers", "2"]
    server = shop.serve("uvicorn", command, port, "shop-asgi")
    statuses = shop.concurrently(port, REQUESTS)
    assert shop.stop(server) == 0
    assert statuses == [200] * len(REQUESTS)
    spans = [s for s in server_spans(shop.receiver) if s.name != "GET /health/"]
    assert len(spans) == len(REQUESTS)
    assert {s.name for s in spans} == {"GET /orders/<int:pk>/", "GET /orders/"}
    assert telemetry_noise(shop.output(server)) == []


def test_app_answers_and_exits_the_same_with_and_without_the_launcher(shop, tmp_path):
    """DJANGO_SETTINGS_MODULE is not exported (the app sets it): responses and exit codes match."""
    assert "DJANGO_SETTINGS_MODULE" not in shop.base_env
    sequence = [
        ("GET", "/orders/"),
        ("GET", "/orders/2/"),
        ("GET", "/orders/999/"),
        ("GET", "/fail/"),
        ("POST", "/orders/"),
        ("GET", "/orders/11/"),
        ("GET", "/no/such/page/"),
    ]
    results = {}
    for variant, service in (("plain", None), ("launched", "shop-web")):
        db = tmp_path / f"{variant}.sqlite3"
        db.write_bytes((tmp_path / "shop.sqlite3").read_bytes())
        web = shop.gunicorn("-w", "1", service=service, SHOP_DB=str(db))
        answers = [shop.request(web.port, method, path, {} if method == "POST" else None) for method, path in sequence]
        assert shop.stop(web) == 0
        commands = [
            shop.manage(*args, service=service, SHOP_DB=str(db))
            for args in (["place_orders", "1"], ["place_orders", "-1"], ["check"])
        ]
        results[variant] = (answers, commands)
    assert results["launched"] == results["plain"]
    assert [code for code, _ in results["plain"][1]] == [0, 1, 0]
    assert [status for status, _ in results["plain"][0]] == [200, 200, 404, 500, 201, 200, 404]
