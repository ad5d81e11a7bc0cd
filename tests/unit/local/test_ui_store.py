"""The trace viewer's SQLite store: traces assembled as spans arrive, filters, bounds by count and bytes,
one trace's failure its own, reads beside writes."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from otel_launch.local.ui.store import NotAStore, QueryTooLong, TraceStore
from tests.helpers import received_span as span

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5


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
    assert set(spans[0]) >= {"span_id", "start_unix_nano", "end_unix_nano", "status", "events", "resource_id"}
    resources = store.get_trace("t1")["resources"]
    assert resources[spans[2]["resource_id"]] == {"service.name": "worker"}


def test_a_span_delivered_twice_is_stored_once(store):
    store.add([span("root", "a")])
    store.add([span("root", "a")])
    assert store.list_traces()[0]["span_count"] == 1


def test_filters(store):
    store.add([span("GET /slow/", "a", trace="slow", end=50_000_000, http__route="/slow/")])
    failed = {"status": "ERROR", "message": "boom", "events": [{"name": "exception", "exception.message": "boom"}]}
    store.add([span("GET /fail/", "b", trace="fail", start=1, service="api", **failed)])
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


# -- one bad span never costs the others -----------------------------------------------------


def test_a_span_that_closes_a_loop_of_parents_is_refused_and_its_trace_still_reads(store):
    assert store.add([span("a", "a", parent="b")]).count == 0  # its parent is not known yet
    rejected = store.add([span("b", "b", parent="a"), span("other", "x", trace="t2")])
    assert rejected.count == 1 and "loop of parents" in rejected.message
    assert store.get_trace("t1")["root_name"] == "a" and store.get_trace("t2")["span_count"] == 1


def test_a_trace_that_cannot_be_stored_costs_only_its_own_spans(store):
    too_late = span("too late", "b", trace="bad", start=2**63, end=2**63)  # SQLite integers stop at 2**63 - 1
    rejected = store.add([span("good", "a"), too_late, span("also good", "c", trace="t3")])
    assert rejected.count == 1 and "OverflowError" in rejected.message
    assert sorted(t["trace_id"] for t in store.list_traces()) == ["t1", "t3"]


# -- bounded by bytes ------------------------------------------------------------------------


def kilobyte_spans(trace: str, count: int, start: int = 0) -> list:
    return [span(f"s{i}", f"{i:x}", trace=trace, start=start + i, url="u" * 1000) for i in range(count)]


def test_the_database_and_its_log_stay_under_the_byte_bound_the_newest_kept(tmp_path):
    path = tmp_path / "traces.sqlite3"
    bounded = TraceStore(path, max_traces=100_000, max_bytes=2 * 1024 * 1024)
    for index in range(200):  # about 10 MB of rows
        bounded.add(kilobyte_spans(f"t{index:03}", 50, start=index * 100))
        on_disk = sum(p.stat().st_size for p in (path, tmp_path / "traces.sqlite3-wal") if p.exists())
        assert bounded.disk_bytes() <= 2 * 1024 * 1024 and on_disk <= 2 * 1024 * 1024, (index, on_disk)
    listed = bounded.list_traces(limit=1000)
    assert listed[0]["trace_id"] == "t199" and len(listed) >= 10
    assert [t["trace_id"] for t in listed] == [f"t{i:03}" for i in range(199, 199 - len(listed), -1)]  # oldest out
    bounded.close()


def test_one_trace_holds_at_most_an_eighth_of_the_bound():
    bounded = TraceStore(":memory:", max_bytes=1024 * 1024)
    bounded.add(kilobyte_spans("big", 300))
    (trace,) = bounded.list_traces()
    assert 60 < trace["span_count"] < 130 and trace["dropped_spans"] == 300 - trace["span_count"]
    bounded.close()


def test_a_search_never_holds_up_ingestion(store):
    """Reads have their own connection and lock: a search in progress does not stop a write."""
    entered, release = threading.Event(), threading.Event()
    store._reader.create_function("hold", 0, lambda: entered.set() or release.wait(10) or 1)
    reader = threading.Thread(target=store._read, args=("SELECT hold()",))
    reader.start()
    assert entered.wait(10)
    writer = threading.Thread(target=store.add, args=([span("written", "a")],))
    writer.start()
    writer.join(10)
    stored = not writer.is_alive()
    release.set()
    reader.join(10)
    assert stored, "a write waited for a search"


def test_a_read_stops_at_its_time_bound():
    bounded = TraceStore(":memory:", query_seconds=0.05)
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1e10) SELECT count(*) FROM c"
    with pytest.raises(QueryTooLong):
        bounded._read(endless)
    assert bounded.trace_count() == 0  # the connection still reads
    bounded.close()


def test_an_older_store_starts_afresh_with_space_given_back(tmp_path):
    """A store an older otel-launch wrote (no application id, its two tables) is a cache: dropped."""
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE traces (trace_id TEXT PRIMARY KEY, seq INTEGER, root_name TEXT)")
    old.execute("CREATE TABLE spans (trace_id TEXT, span_id TEXT, parent_span_id TEXT, resource TEXT)")
    old.execute("INSERT INTO traces VALUES ('x', 1, 'root')")
    old.execute("PRAGMA user_version = 2")
    old.commit()
    old.close()
    again = TraceStore(path)
    assert again.started_afresh and again.trace_count() == 0
    assert again._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    again.add([span("root", "a")])
    again.close()
    assert not TraceStore(path).started_afresh


def django_database(path: Path) -> bytes:
    made = sqlite3.connect(path)
    made.execute("CREATE TABLE auth_user (id INTEGER PRIMARY KEY, username TEXT)")
    made.execute("INSERT INTO auth_user VALUES (1, 'admin')")
    made.execute("CREATE TABLE django_migrations (id INTEGER PRIMARY KEY, app TEXT)")
    made.commit()
    made.close()
    return path.read_bytes()


@pytest.mark.parametrize(
    "tables",
    [
        "auth_user, django_migrations",
        "traces, spans",  # our names, another program's columns
    ],
)
def test_a_database_of_another_program_is_refused_and_left_untouched(tmp_path, tables):
    path = tmp_path / "db.sqlite3"
    if tables.startswith("auth_user"):
        before = django_database(path)
    else:
        made = sqlite3.connect(path)
        made.execute("CREATE TABLE traces (id INTEGER PRIMARY KEY, amount REAL)")
        made.execute("CREATE TABLE spans (id INTEGER PRIMARY KEY, bridge TEXT)")
        made.execute("INSERT INTO spans VALUES (1, 'Forth')")
        made.commit()
        made.close()
        before = path.read_bytes()
    with pytest.raises(NotAStore) as refused:
        TraceStore(path)
    assert all(name in str(refused.value) for name in tables.split(", ")), refused.value
    assert "not an otel-launch trace store" in str(refused.value) and "left untouched" in str(refused.value)
    assert path.read_bytes() == before and not Path(f"{path}-wal").exists()


def test_a_file_that_is_not_a_database_or_cannot_be_made_is_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 200)
    with pytest.raises(NotAStore) as refused:
        TraceStore(text)
    assert "notes.txt" in str(refused.value) and text.read_text() == "not a database\n" * 200
    with pytest.raises(NotAStore) as refused:
        TraceStore(text / "sub" / "traces.sqlite3")  # a directory under a file
    assert "notes.txt" in str(refused.value)


def test_memory_is_a_temporary_file_removed_on_close():
    temporary = TraceStore(":memory:")
    path = Path(temporary.path)
    temporary.add([span("root", "a")])
    assert path.exists()
    temporary.close()
    assert not path.parent.exists()


# -- what one export can cost ------------------------------------------------------------------


def test_a_resource_is_stored_once_not_with_every_span(tmp_path):
    path = tmp_path / "traces.sqlite3"
    store = TraceStore(path, max_traces=100_000)
    resource = {"service.name": "s", **{f"r{i:03}": "a" * 16384 for i in range(30)}}  # about 500 KB
    spans = [span("one", f"{i:x}", trace=f"t{i}") for i in range(300)]
    for made in spans:
        made.resource = resource  # one export: one resource object for all its spans
    assert store.add(spans).count == 0
    assert store.trace_count() == 300
    assert store.disk_bytes() < 4 * 1024 * 1024, store.disk_bytes()  # 300 copies would be 150 MB
    trace = store.get_trace("t7")
    assert trace["resources"][trace["spans"][0]["resource_id"]] == resource
    store.close()


def test_of_an_exports_new_traces_the_last_max_traces_are_written_the_rest_refused_up_front(store):
    store.add([span("known", "a", trace="old")])
    spans = [span("n", "a", trace=f"new{i}") for i in range(5)] + [span("late", "b", parent="a", trace="old")]
    rejected = store.add(spans)
    reason = "in new traces before the last 3 of the export (the store's bound)"
    assert rejected.count == 2 and rejected.reasons == {reason: 2}
    # the known trace took its late span, then went as the oldest: the newest three are kept
    assert [t["trace_id"] for t in store.list_traces()] == ["new4", "new3", "new2"]


def test_spans_over_a_traces_caps_are_refused_with_the_reason():
    capped = TraceStore(":memory:", max_spans_per_trace=2)
    rejected = capped.add([span("a", "1"), span("b", "2", parent="1"), span("c", "3", parent="1")])
    assert rejected.reasons == {"beyond the 2 spans a trace holds": 1}
    capped.close()
    small = TraceStore(":memory:", max_bytes=1024 * 1024)
    rejected = small.add(kilobyte_spans("big", 300))
    assert rejected.count > 100 and rejected.reasons == {
        f"beyond the {1024 * 1024 // 8} bytes a trace holds": rejected.count
    }
    small.close()


def test_the_byte_bound_holds_between_the_batches_of_one_export(tmp_path):
    path = tmp_path / "traces.sqlite3"
    bounded = TraceStore(path, max_traces=100_000, max_bytes=2 * 1024 * 1024)
    peaks = []

    def batches():
        for number in range(40):  # about 10 MB of rows in one export
            peaks.append(bounded.disk_bytes())
            yield [s for index in range(5) for s in kilobyte_spans(f"t{number:02}{index}", 50, start=number * 1000)]

    bounded.add_export(batches())
    assert max(peaks) <= 2 * 1024 * 1024 and bounded.disk_bytes() <= 2 * 1024 * 1024, peaks
    assert bounded.list_traces(limit=1)[0]["trace_id"] == "t394"
    bounded.close()


def test_traces_are_listed_in_the_order_they_arrived(store):
    hour = 3600 * 10**9
    store.add([span("from a clock an hour ahead", "a", trace="ahead", start=hour, end=hour + 1)])
    store.add([span("now", "b", trace="now")])
    assert [t["trace_id"] for t in store.list_traces()] == ["now", "ahead"]


def test_service_names_are_capped_per_trace_and_in_the_list(monkeypatch):
    import otel_launch.local.ui.store as store_module

    monkeypatch.setattr(store_module, "SERVICES_LISTED", 5)
    many = TraceStore(":memory:")
    many.add([span("s", f"{i:x}", service=f"svc,{i:02}" + "x" * 300) for i in range(30)])
    (trace,) = many.list_traces()
    assert len(trace["services"]) == 20 and all(len(name) == 256 for name in trace["services"])
    assert trace["services"][0].startswith("svc,00")  # a comma in a name stays in the name
    assert len(many.services()) == 5
    many.close()


def test_reading_a_trace_stops_at_the_time_bound_too():
    bounded = TraceStore(":memory:", query_seconds=0)
    bounded.add([span(f"s{i}", f"{i:x}", parent="0" if i else "") for i in range(2000)])
    with pytest.raises(QueryTooLong):
        bounded.get_trace("t1")
    bounded.close()
