"""The trace viewer's SQLite store: traces assembled as spans arrive, filters, bounds."""

from __future__ import annotations

import pytest

from otel_launch._receiver import ReceivedSpan
from otel_launch.local.ui.store import TraceStore

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5


def span(name, span_id, parent="", trace="t1", start=0, end=1_000_000, service="web", status="UNSET", kind=1, **attrs):
    return ReceivedSpan(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_ns=start,
        end_ns=end,
        status=status,
        status_message="boom" if status == "ERROR" else "",
        attributes=attrs,
        resource={"service.name": service},
        scope="scope",
        events=[{"name": "exception", "exception.message": "boom"}] if status == "ERROR" else [],
    )


@pytest.fixture
def store():
    opened = TraceStore(":memory:", max_traces=3)
    yield opened
    opened.close()


def test_worker_spans_first_then_the_web_one_trace_rooted_at_the_post(store):
    store.add([span("run/fulfil", "c", parent="b", kind=CONSUMER, start=5_000_000, end=9_000_000, service="worker")])
    (early,) = store.list_traces()
    assert early["root_name"] == "run/fulfil" and early["span_count"] == 1  # the best known so far
    store.add([span("POST /orders/", "a", kind=SERVER, end=4_000_000), span("publish", "b", parent="a", kind=PRODUCER)])
    (trace,) = store.list_traces()
    assert trace["root_name"] == "POST /orders/" and trace["root_service"] == "web"
    assert trace["span_count"] == 3 and trace["duration_ms"] == 9.0 and trace["services"] == ["web", "worker"]
    spans = store.get_trace("t1")["spans"]
    assert [(s["name"], s["parent_span_id"], s["kind"]) for s in spans] == [
        ("POST /orders/", None, "server"),
        ("publish", "a", "producer"),
        ("run/fulfil", "b", "consumer"),
    ]
    assert set(spans[0]) >= {"span_id", "start_unix_nano", "end_unix_nano", "status", "events", "resource"}


def test_a_span_delivered_twice_is_stored_once(store):
    store.add([span("root", "a")])
    store.add([span("root", "a")])
    assert store.list_traces()[0]["span_count"] == 1


def test_filters(store):
    store.add([span("GET /slow/", "a", trace="slow", end=50_000_000, http__route="/slow/")])
    store.add([span("GET /fail/", "b", trace="fail", status="ERROR", start=1, service="api")])
    store.add([span("SELECT", "c", trace="sql", start=2, kind=CLIENT, **{"db.statement": "SELECT 100% FROM x"})])
    assert [t["trace_id"] for t in store.list_traces()] == ["sql", "fail", "slow"]  # newest first
    assert [t["trace_id"] for t in store.list_traces(service="api")] == ["fail"]
    assert [t["trace_id"] for t in store.list_traces(status="error")] == ["fail"]
    assert [t["trace_id"] for t in store.list_traces(status="ok")] == ["sql", "slow"]
    assert [t["trace_id"] for t in store.list_traces(min_duration_ms=10)] == ["slow"]
    assert [t["trace_id"] for t in store.list_traces(q="fail")] == ["fail"]  # a span name
    assert [t["trace_id"] for t in store.list_traces(q="100%")] == ["sql"]  # an attribute value, % literal
    assert store.list_traces(q="db.statement") == []  # keys are not values
    assert store.list_traces(q="_") == []  # LIKE wildcards are escaped
    assert store.list_traces()[1]["error_count"] == 1


def test_bounded_the_oldest_received_dropped(store):
    for index in range(5):
        store.add([span("root", "a", trace=f"t{index}", start=index)])
    assert store.trace_count() == 3
    assert [t["trace_id"] for t in store.list_traces()] == ["t4", "t3", "t2"]
    assert store.get_trace("t0") is None
    store.add([span("late child", "z", parent="a", trace="t2")])  # a known trace: no eviction
    assert store.trace_count() == 3 and store.get_trace("t2")["span_count"] == 2


def test_spans_beyond_the_per_trace_cap_are_counted_not_stored():
    capped = TraceStore(":memory:", max_spans_per_trace=2)
    capped.add([span("a", "1"), span("b", "2", parent="1"), span("c", "3", parent="1")])
    capped.add([span("d", "4", parent="1")])
    (trace,) = capped.list_traces()
    assert trace["span_count"] == 2 and trace["dropped_spans"] == 2


def test_a_file_store_keeps_traces_across_restarts(tmp_path):
    path = tmp_path / "sub" / "traces.sqlite3"
    first = TraceStore(path)
    first.add([span("root", "a")])
    first.close()
    again = TraceStore(path)
    again.add([span("other", "b", trace="t2", start=5)])
    assert [t["trace_id"] for t in again.list_traces()] == ["t2", "t1"]
    again.close()
