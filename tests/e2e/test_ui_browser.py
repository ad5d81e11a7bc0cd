"""The trace viewer in a real headless Chromium, after a real gunicorn + Celery run of the shop.

Debian's ``chromium`` driven by playwright (never ``playwright install``). Without Chromium
the test says so and skips; the JSON API is tested without a browser in tests/process/test_ui.py.
The page runs under its own Content-Security-Policy: every answer carries the security
headers, and the browser reports no violation.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.browser import ARGS, CHROMIUM, assert_security_headers
from tests.e2e.shop import Shop

pytestmark = pytest.mark.e2e
# Set to a path to keep the trace page's screenshot (the README's docs/ui-trace.png is made so).
SCREENSHOT = os.environ.get("OTEL_LAUNCH_UI_SCREENSHOT")


def send_flagged_trace(endpoint: str) -> str:
    """A trace with N+1 attributes on its server span and a queue time on its run span, sent with the SDK."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, set_span_in_context

    provider = TracerProvider(resource=Resource.create({"service.name": "flagged"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    tracer = provider.get_tracer("test")
    attributes = {"http.status_code": 200, "otel_launch.n_plus_one.statement": "SELECT ... WHERE customer = %s"}
    server = tracer.start_span("GET /customers/", kind=SpanKind.SERVER, attributes=attributes)
    publish = tracer.start_span("apply_async/orders.tasks.notify", set_span_in_context(server), SpanKind.PRODUCER)
    publish.end()
    run = tracer.start_span("run/orders.tasks.notify", set_span_in_context(publish), SpanKind.CONSUMER)
    run.set_attribute("celery.task.queue_time", 0.012)
    run.end()
    server.end()
    provider.shutdown()
    return format(server.get_span_context().trace_id, "032x")


def test_the_order_trace_in_the_browser_publish_and_run_nested_under_the_post(shop: Shop, ui, tmp_path: Path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium); the JSON API tests still run")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    url, endpoint = ui
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    web = shop.gunicorn("-w", "2", **env)
    shop.worker("--pool", "prefork", "--concurrency", "2", **env)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            page.set_default_timeout(30_000)
            refused_by_policy = []  # the page runs under its Content-Security-Policy without a violation
            page.on("console", lambda m: "Content Security Policy" in m.text and refused_by_policy.append(m.text))
            answers = []
            page.on("response", lambda answer: answers.append(answer))
            first = page.goto(url + "/")
            assert_security_headers(first.headers)
            page.locator("#trace-list > *").first.wait_for()  # the list drawn (the health checks' traces)
            order = page.locator("tr.trace", has=page.locator("td.root a", has_text=re.compile(r"^POST /orders/$")))
            assert order.count() == 0
            # the page is open before the order is placed: the list is live, no reload
            assert shop.request(web.port, "POST", "/orders/", {"customer": "browser"})[0] == 201
            assert shop.request(web.port, "GET", "/orders/")[0] == 200
            shop.wait_for_executions(2)
            order.first.wait_for()
            assert "shop-web" in order.first.inner_text()
            order.first.locator("td.root a").click()
            page.wait_for_url(re.compile(r"/trace/[0-9a-f]{32}$"))
            # nested in the DOM: POST > ... > apply_async/... > run/... (the worker's spans arrive later)
            post = page.locator('li.span[data-name="POST /orders/"]')
            publish = post.locator('li.span[data-kind="producer"][data-name="apply_async/orders.tasks.fulfil_order"]')
            run = publish.locator('> ul > li.span[data-kind="consumer"][data-name="run/orders.tasks.fulfil_order"]')
            run.wait_for()
            assert run.get_attribute("data-service") == "shop-worker"
            assert "201" in post.locator("> .row .badge").first.inner_text()
            assert "queued" in run.locator("> .row").inner_text()
            assert page.locator('li.span[data-name="LLEN LLEN LLEN LLEN"] .name').first.inner_text() == "LLEN \u00d74"
            run.locator("> .row").click()
            assert "celery" in page.locator("#span-detail").inner_text().lower()
            shot = tmp_path / "ui-trace.png"
            page.screenshot(path=str(shot))
            if SCREENSHOT:
                shutil.copy(shot, SCREENSHOT)
            # what the launcher's other integrations record, shown when present
            trace_id = send_flagged_trace(endpoint)
            page.goto(f"{url}/trace/{trace_id}")
            flagged = page.locator('li.span[data-name="GET /customers/"] > .row')
            flagged.wait_for()
            assert "N+1" in flagged.inner_text() and "200" in flagged.inner_text()
            queued = page.locator('li.span[data-name="run/orders.tasks.notify"] > .row')
            assert "queue_time 12 ms" in queued.inner_text()
            # every answer the page got (page, script, style, API) carried the headers; no violation
            assert {"/", "/static/app.js", "/static/style.css", "/api/traces"} <= {
                urlsplit(answer.url).path for answer in answers
            }
            for answer in answers:
                assert_security_headers(answer.headers)
            assert refused_by_policy == []
            # a page that frames it gets nothing: the browser itself refuses (frame-ancestors, X-Frame-Options)
            framing = browser.new_page()
            framing.set_content(f'<iframe src="{url}/"></iframe>')  # returns once the frame has loaded or failed
            framed = framing.frames[1]
            assert framed.url.startswith("chrome-error:") or framed.locator("#app").count() == 0, framed.url
        finally:
            browser.close()


def test_a_trace_4999_spans_deep_draws_whole(ui):
    """A chain of parents as deep as a trace may hold: every span drawn, lists nested to a bound,
    the indent capped and the depth written out; no error on the page."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    from tests.otlp_requests import NOW, grpc_export, span, trace_request

    url, endpoint = ui
    chain = [span(0xDEE9, index + 1, parent=index, name=f"s{index}", start=NOW + index) for index in range(4999)]
    grpc_export(int(endpoint.rsplit(":", 1)[1]), trace_request(chain))
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            page.set_default_timeout(60_000)
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{url}/trace/{0xDEE9:032x}")
            deepest = page.locator('li.span[data-name="s4998"] > .row')
            deepest.wait_for(state="attached")
            assert page.locator("li.span").count() == 4999 and errors == [], errors
            assert "depth 4998" in deepest.inner_text()
            padding = deepest.locator(".label").evaluate("label => getComputedStyle(label).paddingLeft")
            assert padding == f"{8 + 16 * 16}px", padding
            assert page.locator("#trace-title").inner_text() == "s0"
        finally:
            browser.close()
