"""The ui's store of metric points and log records: what the receiver decodes for it, series at
the cap, one export's refusals."""

from __future__ import annotations

import time

import pytest

from otel_launch.local.receiver import VIEWER_LIMITS, decoded
from otel_launch.local.ui.overview import Window, overview
from otel_launch.local.ui.store import QueryTooLong
from otel_launch.local.ui.telemetry import Store
from tests.otlp_requests import gauge_request, histogram_request, logs_request, span, trace_request


def test_the_receiver_decodes_what_the_store_needs_of_a_histogram_and_a_log_record():
    request = histogram_request([0.1, 0.5], [1, 2, 3])
    request.resource_metrics[0].scope_metrics[0].scope.name = "django"
    point = request.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0]
    point.min, point.max = 0.05, 0.9
    ((got,),) = decoded("metrics", request, "http", VIEWER_LIMITS)
    assert (got.metric, got.kind, got.unit, got.temporality, got.scope) == ("h", "histogram", "s", 2, "django")
    assert (got.count, got.sum, got.bucket_counts, got.bounds, got.min, got.max) == (
        6,
        1.0,
        [1, 2, 3],
        [0.1, 0.5],
        0.05,
        0.9,
    )
    assert got.time_ns - got.start_ns == 10**9 and got.service == "svc"
    logs = logs_request(["hello"], severity=17)
    record = logs.resource_logs[0].scope_logs[0].log_records[0]
    record.observed_time_unix_nano = record.time_unix_nano + 5
    logs.resource_logs[0].scope_logs[0].scope.name = "shop.orders"
    ((log,),) = decoded("logs", logs, "http", VIEWER_LIMITS)
    assert (log.body, log.severity_number, log.scope, log.observed_ns - log.time_ns) == ("hello", 17, "shop.orders", 5)


def test_at_the_series_cap_quiet_series_give_way_busy_ones_do_not():
    store = Store(":memory:", max_series=10)
    try:
        assert (
            store.add_points(decoded("metrics", gauge_request([({"n": n}, 1.0) for n in range(10)]), "http")).count == 0
        )
        # five series last reached 20 minutes ago (a process that ended)
        store._db.execute(
            "UPDATE points SET received_ns = received_ns - 1200000000000 WHERE series IN "
            "(SELECT id FROM series WHERE json_extract(attributes, '$.n') < 5)"
        )
        new = gauge_request([({"n": n}, 2.0) for n in range(100, 106)])
        refused = store.add_points(decoded("metrics", new, "http", VIEWER_LIMITS))
        assert refused.count == 1 and "beyond the 10 the store holds" in refused.message, refused.message
        kept = sorted(row[0] for row in store._db.execute("SELECT json_extract(attributes, '$.n') FROM series"))
        assert kept == [5, 6, 7, 8, 9, 100, 101, 102, 103, 104]
    finally:
        store.close()


def test_points_and_records_arrive_in_the_readers_view_at_once():
    store = Store(":memory:")
    try:
        store.add_logs(decoded("logs", logs_request(["one", "two"], service="web"), "http", VIEWER_LIMITS))
        logs, stored = store.logs(service="web")
        assert [log["body"] for log in logs] == ["two", "one"] and stored == 2
        assert store.services() == ["web"]
        at = time.time_ns()
        store.add_points(decoded("metrics", gauge_request([({}, 3.0)], service="worker", at=at), "http", VIEWER_LIMITS))
        assert [m["name"] for m in store.metric_names()] == ["g"] and store.services() == ["web", "worker"]
    finally:
        store.close()


def test_the_overview_answers_without_its_database_tables_when_the_spans_take_too_long(monkeypatch):
    store = Store(":memory:")
    try:
        store.add_points(decoded("metrics", gauge_request([({}, 2.0)], name="celery.worker.tasks.executing"), "http"))

        def too_long(*args):
            raise QueryTooLong("the query took longer than 5 s")

        monkeypatch.setattr(store, "db_spans", too_long)
        answer = overview(store, None, Window(900, 10))
        assert answer["db"] == {
            "slowest": [],
            "n_plus_one": [],
            "error": "the query took longer than 5 s; narrow the window or the service",
        }
        assert answer["celery"]["workers"] == [
            {"service": "svc", "executing": 2.0, "prefetched": None, "scheduled": None}
        ]
    finally:
        store.close()


def test_the_slowest_statements_are_sql_a_brokers_redis_commands_are_left_out():
    store = Store(":memory:")
    start = time.time_ns()
    ms = 1_000_000
    statements = [  # (statement, attributes beside it, duration in ms)
        ("SELECT * FROM item", {"db.system": "postgresql"}, 30),
        ("INSERT INTO shop_order VALUES (%s)", {"db.system.name": "sqlite"}, 20),
        ("SELECT 1", {}, 5),  # no system named: SQL all the same
        ("PING", {"db.system": "redis"}, 300),
        ("LLEN celery", {"db.system.name": "redis"}, 200),
        ('{"find": "orders"}', {"db.system": "mongodb"}, 100),
    ]
    spans = [
        span(0xD0, 1 + index, name=text.split()[0], start=start, end=start + duration * ms,
             attributes={"db.statement": text, **extra}, kind=3)
        for index, (text, extra, duration) in enumerate(statements)
    ]  # fmt: skip
    try:
        store.add(next(iter(decoded("traces", trace_request(spans, service="shop"), "http", VIEWER_LIMITS))))
        slowest = overview(store, None, Window(900, 10))["db"]["slowest"]
        assert [(row["statement"], row["duration_ms"]) for row in slowest] == [
            ("SELECT * FROM item", 30.0),
            ("INSERT INTO shop_order VALUES (%s)", 20.0),
            ("SELECT 1", 5.0),
        ]
    finally:
        store.close()


def test_requests_exported_every_minute_read_as_their_rate_in_every_10_s_step_by_hand():
    """A process older than the window exports its cumulative request count every 60 s: 100, then
    160, then 190. Over 10 s steps, the 60 requests between the first two exports are 1 a second
    in each of the six steps of that minute, the next 30 are 0.5 a second (Prometheus' rate over
    the interval each increase covers), not 6 and 3 in one step and 0 in the five others."""
    minute = 60 * 10**9
    base = time.time_ns() // minute * minute - 10 * minute  # ten minutes ago, on a minute
    store = Store(":memory:")
    try:
        for index, total in enumerate((100, 160, 190)):
            request = histogram_request([0.1, 1.0], [total, 0, 0], name="http.server.request.duration")
            point = request.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0]
            point.start_time_unix_nano, point.time_unix_nano = base - 60 * minute, base + index * minute
            point.sum = total * 0.05
            assert store.add_points(decoded("metrics", request, "http", VIEWER_LIMITS)).count == 0
        window = Window(900, 10, now_ns=base + 10 * minute + 5 * 10**9)
        web = overview(store, None, window)["web"]
        first = window.times_ms().index(base // 10**6)
        rps = web["series"]["rps"]
        assert rps[first - 1] == 0 and rps[first : first + 6] == [1.0] * 6 and rps[first + 6 : first + 12] == [0.5] * 6
        assert not any(rps[first + 12 :])
        assert web["series"]["p50_ms"][first : first + 12] == [pytest.approx(50.0)] * 12  # every step has its share
        assert web["routes"][0]["requests"] == 90 and web["routes"][0]["rate"] == pytest.approx(0.1)
    finally:
        store.close()
