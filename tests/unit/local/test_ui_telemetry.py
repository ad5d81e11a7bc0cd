"""The ui's store of metric points and log records: what the receiver decodes for it, series at
the cap, one export's refusals."""

from __future__ import annotations

import sqlite3
import time

import pytest

from otel_launch.local.receiver import VIEWER_LIMITS, decoded
from otel_launch.local.ui import overview as overview_module
from otel_launch.local.ui.overview import TASKS_CHARTED, Window, overview
from otel_launch.local.ui.store import QueryTooLong
from otel_launch.local.ui.telemetry import Store
from tests.otlp_requests import gauge_request, histogram_request, kv, logs_request, span, trace_request

ORPHANS = "SELECT count(*) FROM points WHERE series NOT IN (SELECT id FROM series)"


def task_runs(attributes: dict, name: str = "messaging.process.duration"):
    """One export of a run-duration histogram point (10 runs, 1 s in all) with these attributes."""
    request = histogram_request([0.1, 1.0], [10, 0, 0], name=name)
    point = request.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0]
    point.attributes.extend(kv(key, value) for key, value in attributes.items())
    return decoded("metrics", request, "http", VIEWER_LIMITS)


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


def test_a_stale_series_with_a_point_in_the_export_that_reaches_the_cap_is_kept_no_point_is_orphaned():
    store = Store(":memory:", max_series=10)
    try:
        first = gauge_request([({"n": n}, 1.0) for n in range(10)])
        assert store.add_points(decoded("metrics", first, "http", VIEWER_LIMITS)).count == 0
        store._db.execute(
            "UPDATE points SET received_ns = received_ns - 1200000000000 WHERE series IN "
            "(SELECT id FROM series WHERE json_extract(attributes, '$.n') < 5)"
        )
        # One export: first a point of the quiet series n=0 (its process is back), then new series.
        new = gauge_request([({"n": n}, 2.0) for n in (0, 100, 101, 102, 103, 104, 105)])
        refused = store.add_points(decoded("metrics", new, "http", VIEWER_LIMITS))
        assert store._db.execute(ORPHANS).fetchone()[0] == 0
        kept = sorted(row[0] for row in store._db.execute("SELECT json_extract(attributes, '$.n') FROM series"))
        assert kept == [0, 5, 6, 7, 8, 9, 100, 101, 102, 103] and refused.count == 2
        assert store._series_count == 10
    finally:
        store.close()


def test_an_expiry_rolled_back_leaves_the_byte_counts_as_the_rows_are():
    store = Store(":memory:", max_age_s=60)
    try:
        store.add_points(decoded("metrics", gauge_request([({"n": n}, 1.0) for n in range(5)]), "http"))
        held = store._held["points"]
        # A failure in the middle of the expiry: the points are deleted, then deleting their series fails.
        store._db.execute(
            "CREATE TEMP TRIGGER refuse BEFORE DELETE ON series BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        with pytest.raises(sqlite3.DatabaseError, match="refused"):
            store.expire(now_ns=time.time_ns() + 3600 * 10**9)
        assert store._db.execute("SELECT count(*) FROM points").fetchone()[0] == 5
        assert store._held["points"] == held
    finally:
        store.close()


def test_the_celery_tables_read_celery_runs_only_not_django_tasks_runs():
    store = Store(":memory:")
    try:
        celery = {"celery.task_name": "shop.tasks.charge", "messaging.destination.name": "celery"}
        django_tasks = {"messaging.system": "django_tasks", "django.task.name": "shop.tasks.mail",
                        "messaging.destination.name": "default"}  # fmt: skip
        for attributes in (celery, django_tasks):
            assert store.add_points(task_runs(attributes)).count == 0
        celery_answer = overview(store, None, Window(900, 10))["celery"]
        assert [(row["task"], row["queue"]) for row in celery_answer["tasks"]] == [("shop.tasks.charge", "celery")]
        assert [(row["task"], row["queue"]) for row in celery_answer["task_series"]] == [
            ("shop.tasks.charge", "celery")
        ]
    finally:
        store.close()


def test_per_step_percentiles_are_built_for_the_charted_tasks_only(monkeypatch):
    store = Store(":memory:")
    tasks, window = 3 * TASKS_CHARTED, Window(900, 1)
    try:
        for index in range(tasks):
            assert store.add_points(task_runs({"celery.task_name": f"t{index}"})).count == 0
        made = []

        class Counted(overview_module._Percentiles):
            def __init__(self) -> None:
                super().__init__()
                made.append(self)

        monkeypatch.setattr(overview_module, "_Percentiles", Counted)
        answer = overview(store, None, window)["celery"]
        assert len(answer["tasks"]) == tasks and len(answer["task_series"]) == TASKS_CHARTED
        # The web chart's per step, two window-wide per task, two per step for each charted task.
        assert len(made) == window.steps + 2 * tasks + 2 * TASKS_CHARTED * window.steps
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
