"""The overview and logs pages in a real headless Chromium, after a real gunicorn + prefork Celery run
of the shop exporting traces, metrics (every second) and logs to a real ``otel-launch ui``.

What the test sent is known on its side: how many requests each route got, how long the slow one
slept, how many tasks failed (the tasks' own log, independent of telemetry). The page must show
those numbers (within an export interval: it refreshes by itself), draw charts with points, list the
app's log lines newest first, each linked to a trace that opens. ``OTEL_LAUNCH_UI_SCREENSHOTS=docs``
keeps the screenshots (docs/ui-overview.png, docs/ui-logs.png are made so).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.browser import ARGS, CHROMIUM, assert_security_headers
from tests.e2e.shop import Shop

pytestmark = pytest.mark.e2e
SCREENSHOTS = os.environ.get("OTEL_LAUNCH_UI_SCREENSHOTS")
SLOW, SLOW_MS, FAILING, FAST, ORDERS = 5, 400, 4, 8, 3  # requests to /slow/ (each sleeps SLOW_MS), /fail/, /orders/
# http.server.request.duration's buckets (seconds), as the semantic conventions advise them
BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]


def cell(row, index: int) -> str:
    return row.locator("td").nth(index).inner_text().strip()


def duration_ms(text: str) -> float:
    value, unit = text.split()
    return float(value) * (1000 if unit == "s" else 1)


def upper_bound_ms(took_ms: list[float]) -> float:
    """The upper bound of the bucket of the slowest of these answers: no percentile of their
    durations reads more (the server's time is within the client's)."""
    return min([b * 1000 for b in BOUNDS if b * 1000 >= max(took_ms)] + [float("inf")])


def timed(shop: Shop, port: int, path: str, count: int) -> list[float]:
    """GET ``path`` ``count`` times, one after the other: how long each answer took (ms)."""
    took = []
    for _ in range(count):
        started = time.monotonic()
        assert shop.request(port, "GET", path)[0] == 200
        took.append((time.monotonic() - started) * 1000)
    return took


def keep(page, tmp_path: Path, name: str, full_page: bool = True) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=full_page)
    if SCREENSHOTS:
        shutil.copy(shot, Path(SCREENSHOTS) / name)


def test_overview_and_logs_show_what_a_real_run_sent(shop: Shop, ui, tmp_path: Path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    expect = sync_api.expect
    url, endpoint = ui
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_LOGS_EXPORTER": "otlp",
    }
    web = shop.gunicorn("-w", "2", **env)
    shop.worker("--pool", "prefork", "--concurrency", "2", **env)

    slow_took = timed(shop, web.port, f"/slow/?ms={SLOW_MS}", SLOW)
    assert shop.concurrently(web.port, ["/fail/"] * FAILING) == [500] * FAILING
    fast_took = timed(shop, web.port, "/orders/", FAST)
    status, output = shop.manage("place_orders", str(ORDERS), "--refund", **env)
    assert status == 0, output
    assert shop.request(web.port, "GET", "/customers/")[0] == 200  # one query per order listed: N+1
    # fulfil, notify and refund for each order, as the tasks logged them (not from telemetry)
    executions = shop.wait_for_executions(3 * ORDERS)
    refunds = [e for e in executions if e["task"] == "orders.tasks.refund"]
    assert len(refunds) == ORDERS

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30_000)
            refused_by_policy, errors, answers = [], [], []
            page.on("console", lambda m: "Content Security Policy" in m.text and refused_by_policy.append(m.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("response", lambda answer: answers.append(answer))

            # -- the overview, last 5 minutes: counts as sent, once an export has carried them
            first = page.goto(url + "/overview?since=300")
            assert_security_headers(first.headers)
            slow = page.locator('#routes tr.route[data-route="/slow/"]')
            expect(slow.locator("td").nth(3)).to_have_text(str(SLOW), timeout=30_000)  # requests
            assert cell(slow, 1) == "shop-web" and cell(slow, 4) == "0"
            assert float(cell(slow, 2)) == pytest.approx(SLOW / 300, abs=0.01)  # req/s over the window
            # p95 from the histogram's buckets: at least the bound below the time slept (0.25 s), at
            # most the upper bound of the slowest answer's bucket (0.5 s unless the machine is busy)
            slow_p95 = duration_ms(cell(slow, 6))
            assert 250 <= slow_p95 <= upper_bound_ms(slow_took), (slow_p95, slow_took)
            failing = page.locator('#routes tr.route[data-route="/fail/"]')
            expect(failing.locator("td").nth(3)).to_have_text(str(FAILING))
            assert cell(failing, 4) == str(FAILING) and cell(failing, 5) == "100.0%"
            fast = page.locator('#routes tr.route[data-route="/orders/"][data-method="GET"]')
            expect(fast.locator("td").nth(3)).to_have_text(str(FAST))
            fast_p95 = duration_ms(cell(fast, 6))
            assert fast_p95 <= upper_bound_ms(fast_took) and fast_p95 < slow_p95, (fast_p95, fast_took)
            # sorted by time spent: the slow route first
            assert page.locator("#routes tr.route").first.get_attribute("data-route") == "/slow/"

            refund = page.locator('#tasks tr.task[data-task="orders.tasks.refund"]')
            expect(refund.locator("td").nth(6)).to_have_text(str(ORDERS))  # failures
            assert cell(refund, 4) == str(ORDERS) and cell(refund, 5) == "0"  # runs, successes
            assert cell(refund, 10) != "-" and cell(refund, 11) != "-"  # run and queue p95
            fulfil = page.locator('#tasks tr.task[data-task="orders.tasks.fulfil_order"]')
            expect(fulfil.locator("td").nth(5)).to_have_text(str(ORDERS))  # successes
            assert page.locator("#workers tr.worker", has_text="shop-worker").count() >= 1

            # real charts, with points: the requests a second and the tasks by outcome
            for name in ("rps", "latency", "outcomes", "run"):
                chart = page.locator(f'.chart[data-chart="{name}"]')
                expect(chart).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
                assert chart.locator("canvas").bounding_box()["width"] > 200
            # the database: the N+1 of /customers/, linked to a trace that shows it
            n_plus_one = page.locator("#n-plus-one tbody tr").first
            n_plus_one.wait_for()
            assert int(cell(n_plus_one, 2)) >= ORDERS
            assert page.locator("#slowest tbody tr").count() >= 1
            keep(page, tmp_path, "ui-overview.png")
            # the last 60 minutes: the same counts, the rate over the longer window
            page.locator('.windows button[data-since="3600"]').click()
            page.wait_for_url(re.compile(r"/overview\?since=3600$"))
            expect(slow.locator("td").nth(2)).to_have_text(f"{SLOW / 3600:.2g}")
            assert cell(slow, 3) == str(SLOW)
            # one service: the worker's has no web section, its tasks stay
            page.locator('select[name="service"]').select_option("shop-worker")
            expect(page.locator("#web")).to_be_hidden()
            expect(refund.locator("td").nth(6)).to_have_text(str(ORDERS))
            page.locator('select[name="service"]').select_option("")
            n_plus_one.locator("a", has_text="trace").click()
            page.wait_for_url(re.compile(r"/trace/[0-9a-f]{32}$"))
            expect(page.locator('li.span[data-name="GET /customers/"] > .row .badge.nplus1')).to_have_count(1)

            # -- the logs: the app's lines newest first, each with a link that opens its trace
            page.locator("header nav a", has_text="Logs").click()
            page.wait_for_url(re.compile(r"/logs$"))
            warnings = page.locator("#log-list tr.log", has_text=f"slow report took {SLOW_MS} ms")
            expect(warnings).to_have_count(SLOW)
            times = [
                float(t) for t in page.locator("#log-list tr.log").evaluate_all("rows => rows.map(r => r.dataset.time)")
            ]
            assert len(times) > SLOW and times == sorted(times, reverse=True), times  # newest first
            expect(page.locator("#log-list tr.log", has_text="order").first).to_be_visible()
            keep(page, tmp_path, "ui-logs.png", full_page=False)
            page.locator('select[name="severity"]').select_option("ERROR")
            expect(page.locator("#log-list tr.log", has_text="slow report")).to_have_count(0)
            assert page.locator("#log-list tr.log", has_text="Internal Server Error: /fail/").count() == FAILING
            page.locator('select[name="severity"]').select_option("")
            page.locator('input[name="q"]').fill("slow report")
            expect(page.locator("#log-list tr.log")).to_have_count(SLOW)
            warnings.first.locator("a", has_text="trace").click()
            page.wait_for_url(re.compile(r"/trace/[0-9a-f]{32}$"))
            expect(page.locator("#trace-title")).to_have_text("GET /slow/")
            expect(page.locator("#trace-logs tr.log", has_text=f"slow report took {SLOW_MS} ms")).to_have_count(1)
            assert "1 log" in page.locator('li.span[data-name="GET /slow/"] > .row').inner_text()
            page.locator("#trace-logs tr.log").first.click()  # selects the span that wrote it
            expect(page.locator("#span-detail h2")).to_have_text("GET /slow/")

            paths = {urlsplit(answer.url).path for answer in answers}
            assert {"/overview", "/static/vendor/uPlot.iife.min.js", "/api/overview", "/api/logs"} <= paths, paths
            for answer in answers:
                assert_security_headers(answer.headers)
            assert refused_by_policy == [] and errors == [], (refused_by_policy, errors)
        finally:
            browser.close()


HOSTILE = '<img src=x onerror="document.title=\'owned\'"><script>document.title="owned"</script>'


def hostile_exports(now: int):
    """A route, a task, a statement, an N+1 statement and a log body that are markup."""
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb

    from tests.otlp_requests import kv, log_request, span, trace_request

    metrics = metrics_pb.ExportMetricsServiceRequest()
    resource = metrics.resource_metrics.add()
    resource.resource.attributes.append(kv("service.name", "hostile"))
    scope = resource.scope_metrics.add()
    duration = scope.metrics.add(name="http.server.request.duration", unit="s")
    duration.histogram.aggregation_temporality = 2
    duration.histogram.data_points.add(
        start_time_unix_nano=now - 10**9,
        time_unix_nano=now,
        count=3,
        sum=0.3,
        bucket_counts=[0, 3, 0],
        explicit_bounds=[0.05, 0.5],
        attributes=[
            kv("http.route", "/" + HOSTILE),
            kv("http.request.method", "GET"),
            kv("http.response.status_code", 200),
        ],
    )
    run = scope.metrics.add(name="messaging.process.duration", unit="s")
    run.histogram.aggregation_temporality = 2
    run.histogram.data_points.add(
        start_time_unix_nano=now - 10**9,
        time_unix_nano=now,
        count=2,
        sum=0.2,
        bucket_counts=[0, 2, 0],
        explicit_bounds=[0.05, 0.5],
        attributes=[kv("celery.task_name", HOSTILE), kv("messaging.destination.name", "q")],
    )
    executions = scope.metrics.add(name="celery.task.executions", unit="{execution}")
    executions.sum.aggregation_temporality = 2
    executions.sum.is_monotonic = True
    executions.sum.data_points.add(
        start_time_unix_nano=now - 10**9,
        time_unix_nano=now,
        as_int=2,
        attributes=[
            kv("celery.task_name", HOSTILE),
            kv("messaging.destination.name", "q"),
            kv("celery.state", "FAILURE"),
        ],
    )
    statement = {"db.system": "sqlite", "db.statement": "SELECT " + HOSTILE}
    flagged = {**statement, "otel_launch.n_plus_one.statement": "SELECT " + HOSTILE, "otel_launch.n_plus_one.count": 9}
    trace = trace_request(
        [
            span(0x4057, 1, name="GET /hostile", start=now),
            span(0x4057, 2, parent=1, name="SELECT", start=now, attributes=flagged),
        ],
        service="hostile",
    )
    log = log_request(HOSTILE, service="hostile", severity="ERROR")
    record = log.resource_logs[0].scope_logs[0].log_records[0]
    record.trace_id, record.span_id, record.severity_number = (0x4057).to_bytes(16, "big"), (1).to_bytes(8, "big"), 17
    return metrics, trace, log


def test_text_from_the_store_stays_text(ui):
    """Markup in a route, a task name, a statement and a log body shows as the characters sent:
    no element made of it, no script run, no policy violation."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as logs_grpc
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as metrics_grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as trace_grpc

    url, endpoint = ui
    metrics, trace, log = hostile_exports(time.time_ns())
    with grpc.insecure_channel(endpoint.removeprefix("http://")) as channel:
        metrics_grpc.MetricsServiceStub(channel).Export(metrics, timeout=30)
        trace_grpc.TraceServiceStub(channel).Export(trace, timeout=30)
        logs_grpc.LogsServiceStub(channel).Export(log, timeout=30)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30_000)
            refused, errors = [], []
            page.on("console", lambda m: "Content Security Policy" in m.text and refused.append(m.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url + "/overview")
            route = page.locator("#routes tr.route td").first
            sync_api.expect(route).to_have_text("GET /" + HOSTILE)
            sync_api.expect(page.locator("#tasks tr.task td").first).to_have_text(HOSTILE)
            sync_api.expect(page.locator("#n-plus-one code.statement").first).to_have_text("SELECT " + HOSTILE)
            sync_api.expect(page.locator("#slowest code.statement").first).to_have_text("SELECT " + HOSTILE)
            # the run chart's legend names the task: uPlot writes its labels as text too
            sync_api.expect(page.locator('.chart[data-chart="run"] .u-legend')).to_contain_text(HOSTILE)
            assert page.locator("#app img, #app script").count() == 0
            page.goto(url + "/logs")
            sync_api.expect(page.locator("#log-list tr.log td.body").first).to_have_text(HOSTILE)
            assert page.locator("#app img, #app script").count() == 0
            page.goto(f"{url}/trace/{0x4057:032x}")
            sync_api.expect(page.locator("#trace-logs td.body").first).to_have_text(HOSTILE)
            assert page.locator("#app img, #app script").count() == 0
            assert page.title() != "owned" and refused == [] and errors == [], (page.title(), refused, errors)
        finally:
            browser.close()


def test_an_answer_that_comes_back_late_does_not_draw_over_a_newer_one(ui):
    """The logs page asks again when a filter changes. The answer to the question before it, held
    back until the filtered list is shown, must not replace that list when it comes at last (it did:
    the page showed the unfiltered records until its next refresh, and a click meant for one row
    landed on another)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as logs_grpc

    from tests.otlp_requests import logs_request

    url, endpoint = ui
    with grpc.insecure_channel(endpoint.removeprefix("http://")) as channel:
        logs_grpc.LogsServiceStub(channel).Export(logs_request(["alpha one", "alpha two", "beta one"]), timeout=30)

    def unfiltered(request_url: str) -> bool:
        return "/api/logs?" in request_url and "q=" not in request_url

    held = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.route(
                re.compile(r"/api/logs\?"),
                lambda route: held.append(route) if unfiltered(route.request.url) else route.continue_(),
            )
            page.goto(url + "/logs")
            deadline = time.monotonic() + 30
            while not held:  # the page's first question, held back
                assert time.monotonic() < deadline, "the logs page asked nothing"
                page.wait_for_timeout(20)
            page.locator('input[name="q"]').fill("beta")
            rows = page.locator("#log-list tr.log")
            sync_api.expect(rows).to_have_count(1)
            page.evaluate(
                """() => { window.mostRows = 0; new MutationObserver(() => { window.mostRows = Math.max(window.mostRows,
                document.querySelectorAll('#log-list tr.log').length); }).observe(document.getElementById('log-list'),
                { childList: true, subtree: true }); }"""
            )
            with page.expect_response(lambda answer: unfiltered(answer.url)):
                held.pop().continue_()
            # The next filtered question comes seconds after the late answer was handled.
            with page.expect_response(lambda answer: "/api/logs?" in answer.url and "q=beta" in answer.url):
                pass
            sync_api.expect(rows).to_have_count(1)
            assert page.evaluate("window.mostRows") <= 1, "the late unfiltered answer was drawn"
        finally:
            browser.close()
