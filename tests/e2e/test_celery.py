"""Web -> broker -> Celery worker, on real gunicorn, a real prefork worker and a real broker.

Counts, not presence: every task execution (as the tasks log it themselves) must have its
run span, also when the worker is stopped right after the last task and when every pool
child is recycled after one task.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.e2e.shop import named, points_by_pid, server_spans, service, telemetry_noise, traces
from tests.helpers import SERVICES_USED

pytestmark = pytest.mark.e2e
CONSUMER = 5  # SpanKind.CONSUMER + 1 in OTLP numbering
TASK_ID = "messaging.message.id"  # the contrib's attribute for the Celery task id


def run_spans(receiver) -> list:
    return named(receiver, "run/")


def assert_every_execution_has_one_run_span(shop, executions) -> None:
    """Task run spans == task executions, per task name, with each execution's own task id."""
    runs = run_spans(shop.receiver)
    assert Counter(span.name.removeprefix("run/") for span in runs) == Counter(e["task"] for e in executions)
    assert Counter(span.attributes.get("celery.task_name") for span in runs) == Counter(e["task"] for e in executions)
    assert Counter(span.attributes.get(TASK_ID) for span in runs) == Counter(e["id"] for e in executions)
    assert all(span.parent_span_id for span in runs), "every run span continues its producer's trace"


def test_request_to_task_is_one_trace_and_nothing_is_lost(shop):
    receiver = shop.receiver
    web = shop.gunicorn("-w", "2")
    port = web.port
    worker = shop.worker("--pool", "prefork", "--concurrency", "2")

    posts = {
        via: shop.request(port, "POST", f"/orders/{via and '?via=' + via}", {"customer": via})
        for via in ("", "headers", "name")
    }
    assert {status for status, _ in posts.values()} == {201}
    order_ids = {via: json.loads(body)["id"] for via, (_, body) in posts.items()}
    status, _ = shop.manage("place_orders", "1", "--charge", "--refund")
    assert status == 0
    # 3 web orders and 1 batch order: each fulfil + notify; charge runs twice (retried); refund once.
    executions = shop.wait_for_executions(4 * 2 + 2 + 1)
    assert shop.stop(worker) == 0  # warm shutdown right after the last task
    assert shop.stop(web) == 0
    executions = shop.executions()
    assert len(executions) == 11

    assert_every_execution_has_one_run_span(shop, executions)

    # Each POST: one trace holding the web server span, the publish span and the worker's run
    # span (and the task that task enqueued), parented in that order.
    by_trace = traces(receiver)
    for via, order_id in order_ids.items():
        (fulfil,) = [e for e in executions if e["task"].endswith("fulfil_order") and e["order"] == order_id]
        (run,) = [s for s in run_spans(receiver) if s.attributes.get(TASK_ID) == fulfil["id"]]
        trace = by_trace[run.trace_id]
        (server,) = [s for s in trace if s.name == "POST /orders/"]
        publishes = [s for s in trace if s.name == "apply_async/orders.tasks.fulfil_order"]
        assert len(publishes) == 1, via
        assert publishes[0].parent_span_id == server.span_id and run.parent_span_id == publishes[0].span_id
        assert service(server) == "shop-web" and service(run) == "shop-worker"
        assert run.kind == CONSUMER
        assert [s.name for s in trace if s.name.startswith("run/")].count("run/orders.tasks.notify_customer") == 1
    # A caller's own headers reach the task, and do not cut the trace (checked above).
    assert [e["origin"] for e in executions if e.get("order") == order_ids["headers"] and "origin" in e] == ["web"]

    # The management command: one root span, named after it, with its tasks in its trace.
    (command,) = [s for s in receiver.spans if s.name == "place_orders"]
    assert not command.parent_span_id and service(command) == "shop-command"
    command_trace = by_trace[command.trace_id]
    retried = [s for s in command_trace if s.name == "run/orders.tasks.charge_card"]
    assert len(retried) == 2
    reasons = sorted(s.attributes.get("celery.retry.reason", "") for s in retried)
    assert reasons[0] == "" and "payment gateway timed out" in reasons[1]
    (refund,) = [s for s in command_trace if s.name == "run/orders.tasks.refund"]
    assert refund.status == "ERROR"
    assert [e["exception.type"] for e in refund.events if e["name"] == "exception"] == ["ValueError"]

    # No orphan root spans from the worker's own broker traffic: every worker span is in a
    # trace some producer started.
    assert [s.name for s in receiver.spans if service(s) == "shop-worker" and not s.parent_span_id] == []

    # Task duration from every pool child that ran a task, each with its own instance id.
    child_pids = {e["pid"] for e in executions}
    reported = points_by_pid(receiver, "messaging.process.duration")
    assert child_pids <= set(reported), f"children {child_pids}, metrics from {set(reported)}"
    # The contrib's duplicate of it is off unless asked for (OTEL_LAUNCH_CELERY_FLOWER_METRIC).
    assert not [p for p in receiver.points if p.metric == "flower.task.runtime.seconds"]
    instance_ids = [next(iter(reported[pid])) for pid in child_pids]
    assert len(set(instance_ids)) == len(child_pids)

    # Log records inside a task carry its run span's ids, in structured and in formatted logs.
    fulfil_logs = [r for r in shop.log_records() if r["message"].startswith("fulfilling order")]
    assert len(fulfil_logs) == 4
    run_ids = {(s.trace_id, s.span_id) for s in run_spans(receiver)}
    assert {(r["trace_id"], r["span_id"]) for r in fulfil_logs} <= run_ids
    text = (shop.workdir / "logs" / "orders.log").read_text()
    assert all(f"trace_id={r['trace_id']} span_id={r['span_id']}" in text for r in fulfil_logs)

    assert telemetry_noise(shop.output(worker)) == []
    assert all(telemetry_noise(shop.output(p)) == [] for p in shop.processes)


def test_children_recycled_after_every_task_lose_nothing(shop):
    worker = shop.worker("--pool", "prefork", "--concurrency", "2", "--max-tasks-per-child", "1")
    status, output = shop.manage("place_orders", "4")
    assert status == 0, output
    shop.wait_for_executions(8)
    assert shop.stop(worker) == 0
    executions = shop.executions()
    assert len(executions) == 8
    assert len({e["pid"] for e in executions}) == 8  # one child per task

    assert_every_execution_has_one_run_span(shop, executions)
    reported = points_by_pid(shop.receiver, "messaging.process.duration")
    assert {e["pid"] for e in executions} <= set(reported)


@pytest.mark.parametrize(
    ("broker", "pool"),
    [
        ("primary", "solo"),
        ("primary", "threads"),
        ("rabbitmq", "prefork"),
        ("filesystem", "prefork"),
    ],
)
def test_pools_and_brokers(shop, broker_urls, broker, pool):
    name = shop.broker if broker == "primary" else broker
    if name not in broker_urls:
        pytest.skip(f"{name} is not reachable here")
    SERVICES_USED.append(f"broker {name} ({broker_urls[name].rpartition('@')[2]}) with the {pool} pool")
    worker = shop.worker("--pool", pool, "--concurrency", "2", SHOP_BROKER_URL=broker_urls[name])
    status, output = shop.manage("place_orders", "2", SHOP_BROKER_URL=broker_urls[name])
    assert status == 0, output
    shop.wait_for_executions(4)
    assert shop.stop(worker) == 0
    executions = shop.executions()
    assert_every_execution_has_one_run_span(shop, executions)
    (command,) = [s for s in shop.receiver.spans if s.name == "place_orders"]
    assert {s.trace_id for s in run_spans(shop.receiver)} == {command.trace_id}
    assert [s.name for s in shop.receiver.spans if service(s) == "shop-worker" and not s.parent_span_id] == []


def test_cache_and_sql_spans_inside_the_request(shop):
    redis_cache = "SHOP_CACHE_URL" in shop.base_env
    memory = "local memory (no redis here, or Django before 4.0)"
    SERVICES_USED.append(f"django cache: {'redis' if redis_cache else memory}")
    web = shop.gunicorn("-w", "1")
    assert [shop.request(web.port, "GET", "/orders/3/")[0] for _ in range(2)] == [200, 200]
    assert shop.stop(web) == 0
    first, second = [s for s in server_spans(shop.receiver) if s.name == "GET /orders/<int:pk>/"]

    def children(span):
        return sorted((s for s in shop.receiver.spans if s.parent_span_id == span.span_id), key=lambda s: s.name)

    assert [s.name for s in children(first)] == ["SELECT", "cache.get", "cache.set"]  # miss: read, query, fill
    assert [s.name for s in children(second)] == ["cache.get"]  # hit
    select, miss, fill = children(first)
    (hit,) = children(second)
    assert (miss.attributes["django.cache.hit"], hit.attributes["django.cache.hit"]) == (False, True)
    # The Redis commands of the Redis-backed cache sit inside the cache spans.
    expected = (["GET"], ["SET"], ["GET"]) if redis_cache else ([], [], [])
    assert tuple([s.name for s in children(span)] for span in (miss, fill, hit)) == expected
    # The statement, without the looked-up value.
    assert "%s" in select.attributes["db.statement"] or "?" in select.attributes["db.statement"]
    assert "3" not in select.attributes["db.statement"].split("WHERE")[-1]


def _celery_has_delay_on_commit() -> bool:
    import celery

    return tuple(celery.VERSION[:2]) >= (5, 4)  # Celery 5.4 added Task.delay_on_commit


def test_tasks_sent_inside_a_transaction_are_flagged_with_what_became_of_it(shop):
    """A task sent inside ``transaction.atomic()``: flagged on its publish and run spans and counted; the
    commit (or rollback) is an event of the request's span naming it, so the run's start can be
    compared with the commit. Sent from ``on_commit`` or ``delay_on_commit``: not flagged."""
    receiver = shop.receiver
    worker = shop.worker("--pool", "prefork", "--concurrency", "1")
    web = shop.gunicorn("-w", "1")

    def place(query: str) -> dict:
        status, body = shop.request(web.port, "POST", f"/orders/in-transaction/?{query}")
        assert status == 200, body[-2000:]
        return json.loads(body)

    raced = place("hold=1")  # the view commits once the worker has run the task
    rolled = place("then=rollback")
    shop.wait_for_executions(2)  # before the next order takes the rolled-back one's id (SQLite reuses it)
    after = [place("send=on_commit")]
    if _celery_has_delay_on_commit():
        after.append(place("send=delay_on_commit"))
    SERVICES_USED.append(f"tasks sent after the commit by: on_commit{', delay_on_commit' * (len(after) == 2)}")
    shop.wait_for_executions(2 + len(after))
    assert shop.stop(worker) == 0
    assert shop.stop(web) == 0  # its metrics leave at exit

    by_task = {e["id"]: e for e in shop.executions()}
    # What the tasks saw, independent of telemetry: the row was not there before the commit, nor after the rollback.
    assert by_task.pop(raced["task"])["found"] is False
    assert by_task.pop(rolled["task"])["found"] is False
    assert [e["found"] for e in by_task.values()] == [True] * len(after)

    def spans_of(task_id: str) -> tuple:
        mine = [s for s in receiver.spans if s.attributes.get(TASK_ID) == task_id]
        (publish,) = [s for s in mine if s.name.startswith("apply_async/")]
        (run,) = [s for s in mine if s.name.startswith("run/")]
        (server,) = [s for s in server_spans(receiver) if s.trace_id == publish.trace_id]
        return publish, run, server

    def ended(server, name: str, task_id: str) -> list:
        return [e for e in server.events if e["name"] == name and task_id in e["otel_launch.transaction.task_ids"]]

    # Sent inside, committed after the worker had run it: flagged, and the commit came after the run's start.
    publish, run, server = spans_of(raced["task"])
    assert publish.attributes["celery.task.sent_in_transaction"] is True
    assert run.attributes["celery.task.sent_in_transaction"] is True
    (commit,) = ended(server, "otel_launch.transaction.commit", raced["task"])
    assert commit["otel_launch.transaction.tasks"] == ["orders.tasks.confirm_order"]
    assert commit["otel_launch.transaction.database"] == "default"
    assert run.start_ns < commit["otel_launch.transaction.ended_at"] * 1e9  # the run started before the commit
    assert ended(server, "otel_launch.transaction.rollback", raced["task"]) == []

    # Sent inside, rolled back: the request's span names it in a rollback event, and its run is flagged.
    publish, run, server = spans_of(rolled["task"])
    assert publish.attributes["celery.task.sent_in_transaction"] is True
    assert run.attributes["celery.task.sent_in_transaction"] is True
    (rollback,) = ended(server, "otel_launch.transaction.rollback", rolled["task"])
    assert rollback["otel_launch.transaction.task_count"] == 1
    assert ended(server, "otel_launch.transaction.commit", rolled["task"]) == []

    # Sent after the commit: nothing flagged, no event.
    for task_id in by_task:
        publish, run, server = spans_of(task_id)
        assert "celery.task.sent_in_transaction" not in publish.attributes
        assert "celery.task.sent_in_transaction" not in run.attributes
        assert [e["name"] for e in server.events if e["name"].startswith("otel_launch.transaction.")] == []

    # Counted per task name, by the web process: 2 sent inside, 1 of them rolled back; 1 commit delay.
    def total(metric: str) -> float:
        found = [p for p in receiver.points if p.metric == metric and service_of(p) == "shop-web"]
        assert all(p.attributes == {"celery.task_name": "orders.tasks.confirm_order"} for p in found), metric
        return sum(p.count if p.count is not None else p.value for p in found)

    assert total("celery.task.sent_in_transaction") == 2
    assert total("celery.task.sent_in_rolled_back_transaction") == 1
    assert total("celery.task.commit_delay") == 1
    assert all(telemetry_noise(shop.output(p)) == [] for p in shop.processes)


def service_of(point) -> str:
    return point.resource.get("service.name", "")
