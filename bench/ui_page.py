"""The overview page's weight, and its load time in headless Chromium with a full store.

    .venv/bin/python bench/ui_page.py [--traces 1000] [--hours 24] [--processes 4] [--runs 5]

Weight: the bytes of what the page loads (index.html, app.js, style.css, the vendored uPlot),
as shipped and gzipped (-9). Load time: ``otel-launch ui`` on a store of its own, filled to its
trace cap (10-span traces of a web request with its queries and a task run) plus a day of metrics
(one export a minute, cumulative, from ``--processes`` processes: half web, half Celery workers,
as otel-launch records them) and some log records; then Chromium opens ``/overview?since=3600``
(the widest window) ``--runs`` times and each run times the navigation until every chart has
drawn its points (``performance.now()`` in the page), then ``/logs`` until its 200 rows are in;
``/api/overview`` is timed alone.
Needs Debian's chromium (``OTEL_LAUNCH_CHROMIUM`` to name another) and the test extra (playwright).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as logs_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as metrics_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as trace_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "otel_launch" / "local" / "ui" / "static"
PAGE = ["index.html", "app.js", "style.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"]
# In the page: DOM ready, /api/overview answered (ms since navigation), the points the charts drew.
MILESTONES = """[
  performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
  performance.getEntriesByType('resource').find((r) => r.name.includes('/api/overview')).responseEnd,
  [...document.querySelectorAll('.chart')].reduce((n, c) => n + Number(c.dataset.points), 0),
]"""
CHARTS = 6  # the overview's charts: requests/s, error rate, latency; outcomes, run, queue time
HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
QUEUE_BUCKETS = [*HTTP_BUCKETS, 30, 60, 300, 900, 3600]
ROUTES = ["/orders/", "/orders/<int:pk>/", "/customers/", "/health/", "/slow/", "/fail/", "/cart/", "/search/"]
TASKS = ["orders.tasks.fulfil_order", "orders.tasks.notify_customer", "orders.tasks.refund", "orders.tasks.charge_card"]


def kv(key: str, value) -> common_pb2.KeyValue:
    if isinstance(value, str):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))


def resource(service: str, pid: int) -> resource_pb2.Resource:
    return resource_pb2.Resource(attributes=[kv("service.name", service), kv("process.pid", pid)])


def weight() -> dict[str, int]:
    raw = {name: (STATIC / name).read_bytes() for name in PAGE}
    return {
        "bytes": sum(len(data) for data in raw.values()),
        "gzip_bytes": sum(len(gzip.compress(data, 9)) for data in raw.values()),
        "vendor_bytes": sum(len(data) for name, data in raw.items() if name.startswith("vendor/")),
        "own_bytes": sum(len(data) for name, data in raw.items() if not name.startswith("vendor/")),
    }


def fill_traces(channel: grpc.Channel, count: int, now_ns: int) -> None:
    export = trace_grpc.TraceServiceStub(channel).Export
    batch = []
    for number in range(count):
        trace_id = (0xB0000 + number).to_bytes(16, "big")
        start = now_ns - (count - number) * 50_000_000
        route = ROUTES[number % len(ROUTES)]
        root = trace_pb2.Span(
            trace_id=trace_id,
            span_id=(1).to_bytes(8, "big"),
            name=f"GET {route}",
            kind=trace_pb2.Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start,
            end_time_unix_nano=start + 40_000_000,
            attributes=[
                kv("http.route", route),
                kv("http.request.method", "GET"),
                kv("http.response.status_code", 200),
            ],
        )
        spans = [root]
        for child in range(8):
            columns = '"orders_order"."id", "orders_order"."customer"'
            statement = f'SELECT {columns} FROM "orders_order" WHERE "id" = %s /* {child % 3} */'
            attributes = [kv("db.system", "sqlite"), kv("db.statement", statement)]
            if child == 0 and number % 7 == 0:
                attributes.append(kv("otel_launch.n_plus_one.statement", statement))
                attributes.append(kv("otel_launch.n_plus_one.count", 8))
            spans.append(
                trace_pb2.Span(
                    trace_id=trace_id,
                    span_id=(child + 2).to_bytes(8, "big"),
                    parent_span_id=root.span_id,
                    name="SELECT",
                    kind=trace_pb2.Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=start + child * 4_000_000,
                    end_time_unix_nano=start + child * 4_000_000 + (1 + number % 13) * 100_000,
                    attributes=attributes,
                )
            )
        spans.append(
            trace_pb2.Span(
                trace_id=trace_id,
                span_id=(20).to_bytes(8, "big"),
                parent_span_id=root.span_id,
                name=f"run/{TASKS[number % len(TASKS)]}",
                kind=trace_pb2.Span.SPAN_KIND_CONSUMER,
                start_time_unix_nano=start + 45_000_000,
                end_time_unix_nano=start + 60_000_000,
            )
        )
        batch.append(
            trace_pb2.ResourceSpans(
                resource=resource("shop-web", 100 + number % 2),
                scope_spans=[trace_pb2.ScopeSpans(spans=spans)],
            )
        )
        if len(batch) == 100 or number == count - 1:
            export(trace_pb.ExportTraceServiceRequest(resource_spans=batch), timeout=60)
            batch = []


def histogram(
    name: str, unit: str, bounds: list[float], series: list[tuple[list, list[int], float, int]]
) -> metrics_pb2.Metric:
    points = [
        metrics_pb2.HistogramDataPoint(
            attributes=attributes,
            start_time_unix_nano=start,
            time_unix_nano=at,
            count=sum(counts),
            sum=total,
            bucket_counts=counts,
            explicit_bounds=bounds,
        )
        for attributes, counts, total, (start, at) in series
    ]
    return metrics_pb2.Metric(
        name=name,
        unit=unit,
        histogram=metrics_pb2.Histogram(
            data_points=points, aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        ),
    )


def sum_metric(
    name: str, unit: str, points: list[tuple[list, float, tuple[int, int]]], monotonic: bool
) -> metrics_pb2.Metric:
    data = [
        metrics_pb2.NumberDataPoint(attributes=a, start_time_unix_nano=s, time_unix_nano=t, as_int=int(v))
        for a, v, (s, t) in points
    ]
    return metrics_pb2.Metric(
        name=name,
        unit=unit,
        sum=metrics_pb2.Sum(
            data_points=data,
            is_monotonic=monotonic,
            aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE,
        ),
    )


def fill_metrics(channel: grpc.Channel, hours: int, processes: int, now_ns: int) -> int:
    """One cumulative export a minute from each process for ``hours``; sent an hour at a time."""
    export = metrics_grpc.MetricsServiceStub(channel).Export
    minutes = hours * 60
    start = now_ns - minutes * 60_000_000_000
    sent = 0
    for process in range(processes):
        web = process % 2 == 0
        service = "shop-web" if web else "shop-worker"
        for hour in range(hours):
            metrics = []
            times = [(start, start + (hour * 60 + m + 1) * 60_000_000_000) for m in range(60)]
            if web:
                series = []
                for index, route in enumerate(ROUTES):
                    attributes = [
                        kv("http.route", route),
                        kv("http.request.method", "GET"),
                        kv("http.response.status_code", 500 if route == "/fail/" else 200),
                    ]
                    for minute, span in enumerate(times):
                        done = hour * 60 + minute + 1
                        counts = [0] * (len(HTTP_BUCKETS) + 1)
                        counts[index % 9] = done * (index + 3)
                        counts[(index + 2) % 9] = done
                        series.append((attributes, counts, done * 0.02 * (index + 1), span))
                metrics.append(histogram("http.server.request.duration", "s", HTTP_BUCKETS, series))
            else:
                durations, queued, executions, gauges = [], [], [], []
                for index, task in enumerate(TASKS):
                    base = [kv("celery.task_name", task), kv("messaging.destination.name", "celery")]
                    for minute, span in enumerate(times):
                        done = hour * 60 + minute + 1
                        counts = [0] * (len(HTTP_BUCKETS) + 1)
                        counts[(index + 1) % 10] = done * 2
                        durations.append((base, counts, done * 0.05, span))
                        qcounts = [0] * (len(QUEUE_BUCKETS) + 1)
                        qcounts[index % 6] = done * 2
                        queued.append((base, qcounts, done * 0.01, span))
                        for state, share in (("SUCCESS", 2), ("FAILURE", 1 if task.endswith("refund") else 0)):
                            executions.append(([*base, kv("celery.state", state)], done * share, span))
                for minute, span in enumerate(times):
                    gauges.append(([], minute % 3, span))
                metrics += [
                    histogram("messaging.process.duration", "s", HTTP_BUCKETS, durations),
                    histogram("celery.task.queue_time", "s", QUEUE_BUCKETS, queued),
                    sum_metric("celery.task.executions", "{execution}", executions, True),
                    sum_metric("celery.worker.tasks.executing", "{task}", gauges, False),
                    sum_metric("celery.worker.tasks.prefetched", "{task}", gauges, False),
                    sum_metric("celery.worker.tasks.scheduled", "{task}", [([], 0, s) for _, _, s in gauges], False),
                ]
            request = metrics_pb.ExportMetricsServiceRequest(
                resource_metrics=[
                    metrics_pb2.ResourceMetrics(
                        resource=resource(service, 200 + process),
                        scope_metrics=[metrics_pb2.ScopeMetrics(metrics=metrics)],
                    )
                ]
            )
            export(request, timeout=120)
            sent += sum(len(m.histogram.data_points) + len(m.sum.data_points) for m in metrics)
    return sent


def fill_logs(channel: grpc.Channel, count: int, now_ns: int) -> None:
    export = logs_grpc.LogsServiceStub(channel).Export
    for first in range(0, count, 500):
        records = [
            logs_pb2.LogRecord(
                time_unix_nano=now_ns - (count - n) * 100_000_000,
                severity_number=9 if n % 5 else 17,
                severity_text="INFO" if n % 5 else "ERROR",
                body=common_pb2.AnyValue(string_value=f"order {n} placed"),
                trace_id=(0xB0000 + n % 1000).to_bytes(16, "big"),
                span_id=(1).to_bytes(8, "big"),
            )
            for n in range(first, min(first + 500, count))
        ]
        export(
            logs_pb.ExportLogsServiceRequest(
                resource_logs=[
                    logs_pb2.ResourceLogs(
                        resource=resource("shop-web", 100), scope_logs=[logs_pb2.ScopeLogs(log_records=records)]
                    )
                ]
            ),
            timeout=60,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--logs", type=int, default=50000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--screenshot", help="a PNG of the overview drawn on the full store, here")
    options = parser.parse_args()
    print(json.dumps({"weight": weight()}))
    chromium = "/usr/bin/chromium"
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="ui-page-bench-") as workdir:
        db = Path(workdir) / "store.sqlite3"
        command = [
            str(Path(sys.executable).parent / "otel-launch"),
            "ui",
            "--port",
            "0",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--db",
            str(db),
            "--max-traces",
            str(options.traces),
        ]
        ui = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            line = ui.stdout.readline()
            found = re.search(r"(http://127\.0\.0\.1:\d+)/ .*OTLP/gRPC on 127\.0\.0\.1:(\d+)", line)
            if not found:
                raise SystemExit(f"otel-launch ui did not start: {line!r}")
            url = found.group(1)
            channel = grpc.insecure_channel(
                f"127.0.0.1:{found.group(2)}", options=[("grpc.max_send_message_length", 64 << 20)]
            )
            now_ns = time.time_ns()
            began = time.monotonic()
            fill_traces(channel, options.traces, now_ns)
            points = fill_metrics(channel, options.hours, options.processes, now_ns)
            fill_logs(channel, options.logs, now_ns)
            fill_s = time.monotonic() - began
            with urllib.request.urlopen(f"{url}/api/traces?limit=1", timeout=60) as answer:
                stored = json.loads(answer.read())["stored"]
            with urllib.request.urlopen(f"{url}/api/logs?limit=1", timeout=60) as answer:
                logs_stored = json.loads(answer.read())["stored"]
            print(
                json.dumps(
                    {
                        "filled_s": round(fill_s, 1),
                        "traces_stored": stored,
                        "logs_stored": logs_stored,
                        "metric_points_sent": points,
                        "store_file_bytes": db.stat().st_size,
                    }
                )
            )
            api = []
            for _ in range(options.runs):
                started = time.perf_counter()
                with urllib.request.urlopen(f"{url}/api/overview?since=3600", timeout=60) as answer:
                    body = answer.read()
                api.append((time.perf_counter() - started) * 1000)
            loads, parts, logs = [], [], []
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"]
                )
                try:
                    for _ in range(options.runs):
                        page = browser.new_page(viewport={"width": 1400, "height": 900})
                        page.goto(f"{url}/overview?since=3600")
                        # a locator, not wait_for_function: the page's policy refuses string evaluation
                        page.locator(".chart[data-points]").nth(CHARTS - 1).wait_for(state="attached", timeout=120_000)
                        loads.append(page.evaluate("performance.now()"))
                        parts.append(page.evaluate(MILESTONES))
                        if options.screenshot:
                            page.screenshot(path=options.screenshot, full_page=True)
                        page.goto(f"{url}/logs")
                        page.locator("#log-list tr.log").nth(199).wait_for(state="attached", timeout=120_000)
                        logs.append(page.evaluate("performance.now()"))
                        page.close()
                finally:
                    browser.close()
            print(
                json.dumps(
                    {
                        "api_overview_ms": {"median": round(statistics.median(api), 1), "max": round(max(api), 1)},
                        "api_overview_bytes": len(body),
                        "overview_drawn_ms": {
                            "median": round(statistics.median(loads), 1),
                            "max": round(max(loads), 1),
                            "runs": [round(v) for v in loads],
                        },
                        "dom_ready_ms_median": round(statistics.median(p[0] for p in parts), 1),
                        "api_answered_ms_median": round(statistics.median(p[1] for p in parts), 1),
                        "chart_points": parts[-1][2],
                        "logs_page_200_rows_ms_median": round(statistics.median(logs), 1),
                    }
                )
            )
        finally:
            ui.send_signal(signal.SIGTERM)
            try:
                ui.wait(30)
            except subprocess.TimeoutExpired:
                ui.kill()
                ui.wait()


if __name__ == "__main__":
    main()
