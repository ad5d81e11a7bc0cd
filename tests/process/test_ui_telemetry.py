"""``otel-launch ui`` keeps metrics and logs too: real SDK exporters (HTTP and gRPC) into the real
process, read back through /api/metrics/names, /api/metrics/series, /api/logs and /api/overview;
the store's bounds for points and records (bytes, age, series), and what it refuses."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind

from tests.helpers import clean_env, launcher, run
from tests.otlp_requests import (
    HttpClient,
    Peak,
    file_bytes,
    gauge_request,
    histogram_request,
    logs_request,
    span,
    trace_request,
)
from tests.ui_process import UI, provider, running_ui, wait_for

pytestmark = pytest.mark.process
ROUTE = {"http.request.method": "GET", "http.response.status_code": 200, "http.route": "/orders/"}
SLOW = {"http.request.method": "GET", "http.response.status_code": 500, "http.route": "/slow/"}
BOUNDS = [0.01, 0.05, 0.1, 0.5, 1.0]


@pytest.fixture
def ui(workdir: Path):
    with running_ui(workdir) as started:
        yield started


def meters(exporter, service: str, pid: int) -> MeterProvider:
    """A meter provider of one process that exports when flushed (the interval is an hour)."""
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    return MeterProvider(
        metric_readers=[reader], resource=Resource.create({"service.name": service, "process.pid": pid})
    )


def web_process(ui: UI, pid: int, grpc: bool):
    exporter = (
        GrpcMetricExporter(endpoint=f"http://127.0.0.1:{ui.grpc_port}", insecure=True)
        if grpc
        else HttpMetricExporter(endpoint=f"http://127.0.0.1:{ui.http_port}/v1/metrics")
    )
    made = meters(exporter, "shop-web", pid)
    duration = made.get_meter("django").create_histogram(
        "http.server.request.duration", unit="s", explicit_bucket_boundaries_advisory=BOUNDS
    )
    return made, duration


def points_of(answer: dict, attributes: dict) -> list[dict]:
    (series,) = [s for s in answer["series"] if s["attributes"] == attributes]
    return series["points"]


def test_http_durations_from_two_processes_are_one_service_with_counts_and_percentiles(ui: UI):
    """Two processes of one service (HTTP and gRPC), each flushed twice (cumulative): the second
    export counts its increase only, the processes add up."""
    one, one_duration = web_process(ui, 101, grpc=False)
    two, two_duration = web_process(ui, 102, grpc=True)
    for _ in range(10):
        one_duration.record(0.02, ROUTE)
    two_duration.record(0.3, SLOW)
    one.force_flush()
    two.force_flush()
    for _ in range(10):
        one_duration.record(0.02, ROUTE)
        two_duration.record(0.02, ROUTE)
    one.force_flush()
    two.force_flush()

    def both_flushes():
        answer = ui.get("/api/metrics/series?name=http.server.request.duration&since=300")[1]
        return (
            answer if len(answer["series"]) == 2 and sum(p["count"] for p in points_of(answer, ROUTE)) == 30 else None
        )

    answer = wait_for(both_flushes, "both processes' two exports in the series")
    assert answer["kind"] == "histogram" and answer["unit"] == "s" and answer["step_s"] == 5
    # One observation of 0.3 s in the bucket (0.1, 0.5]: p95 = 0.1 + 0.4 * 0.95 = 0.48. Its increase is
    # shared over the steps from the stream's start to the export, one step or two when a step's edge
    # falls between them: each share has the same bucket, so the same percentiles.
    slow = points_of(answer, SLOW)
    assert 1 <= len(slow) <= 2 and sum(p["count"] for p in slow) == pytest.approx(1)
    assert sum(p["sum"] for p in slow) == pytest.approx(0.3)
    assert all(p["p95"] == pytest.approx(0.48) for p in slow)
    names = ui.get("/api/metrics/names")[1]["metrics"]
    assert names == [
        {
            "name": "http.server.request.duration",
            "kind": "histogram",
            "unit": "s",
            "description": "",
            "monotonic": False,
            "services": ["shop-web"],
        }
    ]

    overview = ui.get("/api/overview?since=300")[1]
    routes = overview["web"]["routes"]
    assert [(r["route"], r["requests"], r["errors"]) for r in routes] == [("/orders/", 30, 0), ("/slow/", 1, 1)]
    assert routes[0]["time_s"] == pytest.approx(0.6) and routes[0]["rate"] == pytest.approx(30 / 300, abs=1e-4)
    # thirty observations of 0.02 s in (0.01, 0.05]: p95 = 0.01 + 0.04 * 28.5 / 30 = 0.048 s
    assert routes[0]["p95_ms"] == pytest.approx(48.0) and routes[1]["p95_ms"] == pytest.approx(480.0)
    series = overview["web"]["series"]
    assert sum(series["rps"]) * overview["step_s"] == pytest.approx(31)
    assert len(series["t"]) == len(series["p95_ms"]) == 60 and any(series["p95_ms"])
    shop_only = ui.get("/api/overview?since=300&service=nobody")[1]
    assert shop_only["web"]["routes"] == []


def test_celery_tasks_workers_and_database_statements_in_the_overview(ui: UI):
    worker = meters(HttpMetricExporter(endpoint=f"http://127.0.0.1:{ui.http_port}/v1/metrics"), "shop-worker", 7)
    meter = worker.get_meter("celery")
    counts = {"SUCCESS": 3, "FAILURE": 2}
    queue = {"celery.task_name": "shop.tasks.fulfil", "messaging.destination.name": "celery"}
    meter.create_observable_counter(
        "celery.task.executions",
        [lambda _: [Observation(n, {**queue, "celery.state": state}) for state, n in counts.items()]],
    )
    meter.create_observable_up_down_counter("celery.worker.tasks.executing", [lambda _: [Observation(2)]])
    meter.create_observable_up_down_counter("celery.worker.tasks.prefetched", [lambda _: [Observation(5)]])
    run = meter.create_histogram("messaging.process.duration", unit="s", explicit_bucket_boundaries_advisory=BOUNDS)
    waited = meter.create_histogram("celery.task.queue_time", unit="s", explicit_bucket_boundaries_advisory=BOUNDS)
    for _ in range(4):
        run.record(0.2, queue)
        waited.record(0.02, queue)
    worker.force_flush()
    counts.update(SUCCESS=8, RETRY=1)  # five more successes and a retry since the first export
    run.record(0.7, {**queue, "error.type": "WorkerLostError"})  # a run whose child was killed
    counts["FAILURE"] += 1
    worker.force_flush()

    traces = provider(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{ui.http_port}/v1/traces"), "shop-web")
    tracer = traces.get_tracer("t")
    with tracer.start_as_current_span("GET /orders/", kind=SpanKind.SERVER) as root:
        root.set_attributes(
            {"otel_launch.n_plus_one.statement": "SELECT * FROM item WHERE id = %s", "otel_launch.n_plus_one.count": 11}
        )
        for duration_ms in (3, 30):
            started = time.time_ns()
            tracer.start_span(
                "SELECT", kind=SpanKind.CLIENT, start_time=started, attributes={"db.statement": "SELECT * FROM item"}
            ).end(started + duration_ms * 1_000_000)
        for command, system in (("PING", "db.system"), ("LLEN celery", "db.system.name")):  # the broker's: not SQL
            started = time.time_ns()
            attributes = {"db.statement": command, system: "redis"}
            tracer.start_span(command, kind=SpanKind.CLIENT, start_time=started, attributes=attributes).end(
                started + 50_000_000
            )
    trace_id = format(root.get_span_context().trace_id, "032x")

    def both_exports():
        answer = ui.get("/api/overview?since=300")[1]
        tasks = answer["celery"]["tasks"]
        return answer if tasks and tasks[0]["runs"] == 12 and answer["db"]["n_plus_one"] else None

    overview = wait_for(both_exports, "the worker's two exports and the trace")
    (task,) = overview["celery"]["tasks"]
    # The first export's totals count whole (the worker started inside the window): 8 successes,
    # 3 failures of which one was killed, 1 retry.
    assert {k: task[k] for k in ("task", "queue", "success", "failure", "killed", "retry", "revoked")} == {
        "task": "shop.tasks.fulfil",
        "queue": "celery",
        "success": 8,
        "failure": 2,
        "killed": 1,
        "retry": 1,
        "revoked": 0,
    }
    assert task["time_s"] == pytest.approx(4 * 0.2 + 0.7)
    assert task["queue_p95_ms"] == pytest.approx((0.01 + 0.04 * 0.95) * 1000)
    series = overview["celery"]["series"]
    assert sum(series["success"]) * overview["step_s"] == pytest.approx(8)
    assert sum(series["killed"]) * overview["step_s"] == pytest.approx(1)
    assert overview["celery"]["workers"] == [
        {"service": "shop-worker", "executing": 2, "prefetched": 5, "scheduled": None}
    ]
    (charted,) = overview["celery"]["task_series"]
    assert charted["task"] == "shop.tasks.fulfil" and any(charted["p95_ms"])
    (slowest,) = overview["db"]["slowest"]
    assert slowest["statement"] == "SELECT * FROM item" and slowest["runs"] == 2
    assert slowest["duration_ms"] == pytest.approx(30) and slowest["trace_id"] == trace_id
    assert overview["db"]["n_plus_one"] == [
        {"statement": "SELECT * FROM item WHERE id = %s", "service": "shop-web", "count": 11, "trace_id": trace_id}
    ]
    assert overview["services"] == ["shop-web", "shop-worker"]


def test_log_records_with_their_trace_filtered_newest_first(ui: UI):
    logs = LoggerProvider(resource=Resource.create({"service.name": "shop-web"}))
    logs.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"http://127.0.0.1:{ui.http_port}/v1/logs"))
    )
    logger = logging.getLogger("shop.orders.telemetry-test")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LoggingHandler(logger_provider=logs))
    traces = provider(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{ui.http_port}/v1/traces"), "shop-web")
    logger.debug("cart loaded")
    with traces.get_tracer("t").start_as_current_span("POST /orders/") as current:
        logger.warning("stock low for %s", "sku-9", extra={"sku": "sku-9"})
        logger.error("payment refused")
    trace_id = format(current.get_span_context().trace_id, "032x")
    span_id = format(current.get_span_context().span_id, "016x")
    logs.force_flush()

    listed = wait_for(lambda: (r := ui.get("/api/logs")[1]) and len(r["logs"]) == 3 and r, "three records")
    assert [r["body"] for r in listed["logs"]] == ["payment refused", "stock low for sku-9", "cart loaded"]
    assert listed["stored"] == 3
    warning = listed["logs"][1]
    assert warning["severity"] == "WARN" and warning["severity_number"] == 13 and warning["service"] == "shop-web"
    assert warning["trace_id"] == trace_id and warning["span_id"] == span_id and warning["attributes"]["sku"] == "sku-9"
    assert warning["scope"] == "shop.orders.telemetry-test" and warning["time"] > 1e12
    assert listed["logs"][2]["trace_id"] == "" and listed["logs"][2]["span_id"] == ""

    def bodies(query: str) -> list:
        return [r["body"] for r in ui.get("/api/logs?" + query)[1]["logs"]]

    assert bodies("severity=WARN") == ["payment refused", "stock low for sku-9"]
    assert bodies("severity=error") == ["payment refused"]
    assert bodies(f"trace_id={trace_id}") == ["payment refused", "stock low for sku-9"]
    assert bodies("q=SKU-9") == ["stock low for sku-9"]  # LIKE: case-insensitive for ASCII
    assert bodies("q=100%25") == []  # a % is a character, not a wildcard
    assert bodies("service=shop-worker") == []
    assert bodies("limit=1") == ["payment refused"]


@pytest.mark.parametrize(
    "query",
    [
        "/api/logs?severity=LOUD",
        "/api/logs?limit=5000",
        "/api/logs?limit=0",
        "/api/logs?trace_id=xyz",
        "/api/metrics/series",
        "/api/metrics/series?name=g&since=-5",
        "/api/metrics/series?name=g&step=0",
        "/api/metrics/series?name=g&since=3600&step=1",
        "/api/metrics/series?name=g&step=1e300",
        "/api/metrics/series?name=g&since=300&step=600",
        "/api/overview?step=1e300",
        "/api/overview?since=nan",
    ],
)
def test_bad_parameters_are_400_with_the_reason(ui: UI, query: str):
    with pytest.raises(urllib.error.HTTPError) as refused:
        ui.get(query)
    assert refused.value.code == 400 and b'"error"' in refused.value.read()


def test_an_unknown_metric_is_404(ui: UI):
    with pytest.raises(urllib.error.HTTPError) as refused:
        ui.get("/api/metrics/series?name=nothing.here")
    assert refused.value.code == 404 and json.loads(refused.value.read()) == {"error": "no such metric"}


# -- what is refused -------------------------------------------------------------------------


def test_points_and_records_that_cannot_be_trusted_are_refused_and_counted(ui: UI):
    client = HttpClient(ui.http_port)
    answer = client.export_metrics(
        gauge_request([({"ok": 1}, 1.0), ({"bad": 1}, float("nan")), ({"x": "y" * 5000}, 2)])
    )
    assert answer.partial_success.rejected_data_points == 2, answer
    assert "2 metric points refused" in answer.partial_success.error_message
    assert "non-finite" in answer.partial_success.error_message and "4096 bytes" in answer.partial_success.error_message
    answer = client.export_metrics(histogram_request([float(b) for b in range(300)], [1] * 301))
    assert answer.partial_success.rejected_data_points == 1 and "256 buckets" in answer.partial_success.error_message
    answer = client.export_metrics(histogram_request([0.1, 0.5], [1, 2]))  # one bucket short
    assert answer.partial_success.rejected_data_points == 1 and "malformed" in answer.partial_success.error_message
    answer = client.export_logs(logs_request(["fine", "x" * 16000 + "y" * 60000]))
    # the body is cut at 16 KiB by the decoder: that record fits; attributes decide the rest
    assert answer.partial_success.rejected_log_records == 0, answer
    big = logs_request(["too big"])
    for index in range(5):
        record = big.resource_logs[0].scope_logs[0].log_records[0]
        record.attributes.add(key=f"a{index}").value.string_value = "z" * 16000
    answer = client.export_logs(big)
    assert answer.partial_success.rejected_log_records == 1, answer
    assert "1 log record refused: 1 over 65536 bytes" in answer.partial_success.error_message
    client.close()
    assert [m["name"] for m in ui.get("/api/metrics/names")[1]["metrics"]] == ["g"]
    assert [r["body"][:4] for r in ui.get("/api/logs")[1]["logs"]] == ["xxxx", "fine"]


@pytest.mark.once  # the store's bounds under volume: the same on every release
def test_new_series_beyond_the_cap_are_refused_the_known_ones_still_taken(ui: UI):
    client = HttpClient(ui.http_port)
    answer = client.export_metrics(gauge_request([({"n": index}, 1.0) for index in range(10_050)]))
    assert answer.partial_success.rejected_data_points == 50, answer
    assert "of new series beyond the 10000 the store holds" in answer.partial_success.error_message
    answer = client.export_metrics(gauge_request([({"n": index}, 2.0) for index in range(100)]))
    assert answer.partial_success.rejected_data_points == 0, answer
    client.close()


# -- bounds ----------------------------------------------------------------------------------


@pytest.mark.once  # the store's bounds under volume: the same on every release
def test_logs_and_points_stay_within_their_share_of_the_byte_bound_the_newest_kept(workdir: Path):
    """--max-bytes 4M: logs and points each hold at most 1 MiB of rows; 3 MB of logs and 2 MB of
    points later the file is under 4 MiB, each holds the newest, and a trace sent first is still there."""
    db = workdir / "store.sqlite3"
    with running_ui(workdir, "--db", str(db), "--max-bytes", "4M") as ui:
        client = HttpClient(ui.http_port)
        client.export(trace_request([span(0x51, 1, name="kept")]))
        for batch in range(30):
            client.export_logs(logs_request([f"record {batch}-{index} " + "x" * 1000 for index in range(100)]))
            assert file_bytes(db) <= 4 * 1024 * 1024
        for batch in range(100):
            at = time.time_ns() - (100 - batch) * 10**9
            client.export_metrics(gauge_request([({"n": index}, batch) for index in range(200)], at=at))
            assert file_bytes(db) <= 4 * 1024 * 1024
        client.close()
        listed = ui.get("/api/logs?limit=1000")[1]
        assert listed["logs"][0]["body"].startswith("record 29-99 "), listed["logs"][0]["body"][:20]
        assert 300 <= listed["stored"] < 1100, listed["stored"]  # about 1 MiB of 1.1 KB records, not 3000
        series = ui.get("/api/metrics/series?name=g&since=300&step=1")[1]["series"]
        values = sorted({p["value"] for s in series for p in s["points"]})
        assert values[-1] == 99 and values[0] > 0, values  # the oldest points were evicted
        assert ui.trace_ids() == [format(0x51, "032x")]
        print("store after 3 MB of logs and 2 MB of points:", file_bytes(db), "bytes")  # -rP shows it


@pytest.mark.once  # the store's bounds under volume: the same on every release
def test_one_export_of_18_mb_of_records_keeps_the_file_within_the_bound_throughout(workdir: Path):
    db = workdir / "store.sqlite3"
    with running_ui(workdir, "--db", str(db), "--max-bytes", "4M") as ui:
        client = HttpClient(ui.http_port)
        request = logs_request([f"record {index} " + "x" * 10_000 for index in range(1800)])
        with Peak(lambda: file_bytes(db)) as disk:
            answer = client.export_logs(request)
        client.close()
        assert answer.partial_success.rejected_log_records == 0, answer
        assert disk.value <= 4 * 1024 * 1024, disk.value
        listed = ui.get("/api/logs?limit=1")[1]
        assert listed["logs"][0]["body"].startswith("record 1799 ") and 50 <= listed["stored"] <= 105, listed["stored"]
        print("largest store within the export:", disk.value, "bytes")  # -rP shows it


def test_traces_points_and_records_older_than_max_age_are_dropped(workdir: Path):
    with running_ui(workdir, "--max-age", "3s") as ui:
        assert "3s of age" in ui.line
        client = HttpClient(ui.http_port)
        client.export(trace_request([span(0x61, 1)]))
        client.export_logs(logs_request(["old"]))
        client.export_metrics(gauge_request([({}, 1.0)]))
        assert ui.trace_ids() and ui.get("/api/logs")[1]["stored"] == 1 and ui.get("/api/metrics/names")[1]["metrics"]
        wait_for(
            lambda: (
                not ui.trace_ids()
                and ui.get("/api/logs")[1]["stored"] == 0
                and not ui.get("/api/metrics/names")[1]["metrics"]
            ),
            "the store emptied by age",
            timeout=15,
        )
        client.export_logs(logs_request(["new"]))
        assert [r["body"] for r in ui.get("/api/logs")[1]["logs"]] == ["new"]
        client.close()


def test_a_bad_max_age_is_one_line_exit_2(workdir: Path):
    for value, why in (("0", "is outside 1s to 366d"), ("soon", "is not a duration"), ("400d", "is outside")):
        result = run([*launcher(), "ui", "--max-age", value], clean_env(), workdir, timeout=30)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--max-age" in result.stderr, result.stderr
        assert f"{value!r} {why}" in result.stderr, result.stderr


def test_a_service_on_the_old_http_conventions_is_read_in_ms_beside_one_on_the_new(ui: UI):
    old = meters(HttpMetricExporter(endpoint=f"http://127.0.0.1:{ui.http_port}/v1/metrics"), "legacy-web", 1)
    old.get_meter("django").create_histogram("http.server.duration", unit="ms").record(
        40, {"http.method": "POST", "http.status_code": 503, "http.route": "/pay/"}
    )
    new, duration = web_process(ui, 2, grpc=False)
    duration.record(0.02, ROUTE)
    old.force_flush()
    new.force_flush()
    client = HttpClient(ui.http_port)
    client.export_logs(logs_request(["only logs"], service="log-only"))
    client.close()

    def both():
        routes = ui.get("/api/overview?since=300")[1]["web"]["routes"]
        return routes if len(routes) == 2 else None

    routes = {r["route"]: r for r in wait_for(both, "both services' routes")}
    assert (routes["/pay/"]["service"], routes["/pay/"]["method"], routes["/pay/"]["errors"]) == (
        "legacy-web",
        "POST",
        1,
    )
    assert routes["/pay/"]["time_s"] == pytest.approx(0.04) and routes["/orders/"]["time_s"] == pytest.approx(0.02)
    # 40 ms in the SDK's default bucket (25, 50]: p95 = 25 + 25 * 0.95
    assert routes["/pay/"]["p95_ms"] == pytest.approx(48.75)
    assert ui.get("/api/services")[1]["services"] == ["legacy-web", "log-only", "shop-web"]
