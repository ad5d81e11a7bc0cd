"""Django through the real launcher: instrumented when a handler loads middleware, not before."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_launch.local.receiver import OTLPReceiver
from tests.helpers import PYTHON, TARGETS, clean_env, kill_group, launcher, run, start

pytest.importorskip("django")
pytestmark = pytest.mark.process
SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def _shop_env(receiver, workdir: Path) -> dict[str, str]:
    """The shop on its own SQLite file, spans to the receiver, no metrics."""
    return clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_SERVICE_NAME="shop",
        SHOP_DB=str(workdir / "shop.sqlite3"),
    )


@pytest.mark.parametrize("app_instruments", [False, True], ids=["zero-code", "app-also-instruments"])
def test_request_gets_one_server_span_with_its_sql_inside(receiver, workdir, app_instruments):
    env = _shop_env(receiver, workdir)
    args = [*launcher(), PYTHON, str(TARGETS / "django_client.py"), str(SHOP)]
    result = run(args + (["--app-instruments-django"] if app_instruments else []), env, workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200"
    assert receiver.wait_for(lambda r: any(s.name.startswith("GET") for s in r.spans), timeout=10)
    servers = [span for span in receiver.spans if span.scope == "opentelemetry.instrumentation.django"]
    assert len(servers) == 1  # never duplicated, whoever instrumented first
    assert "Attempting to instrument while already instrumented" not in result.stderr
    (server,) = servers
    assert server.name == "GET /orders/<int:pk>/"
    assert server.attributes.get("http.status_code", server.attributes.get("http.response.status_code")) == 200
    children = [span for span in receiver.spans if span.parent_span_id == server.span_id]
    assert sorted(span.name for span in children) == ["SELECT", "cache.get", "cache.set"]


def test_management_command_loads_only_what_it_uses(workdir):
    """``manage.py check`` of a Django + Celery + SQLite project: it serves no request, publishes
    no task and runs no query, so none of those instrumentations (nor the metrics SDK) load."""
    code = (
        "import json, os, sys; sys.argv = ['manage.py', 'check']\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'shop.settings')\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(sys.argv)\n"
        "prefixes = ('opentelemetry.instrumentation', 'opentelemetry.sdk.metrics')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(prefixes))))\n"
    )
    env = clean_env(SHOP_DB=str(workdir / "shop.sqlite3"), PYTHONPATH=str(SHOP))
    result = run([*launcher(), PYTHON, "-c", code], env, workdir)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    unused = ["django", "celery", "sqlite3", "dbapi"]
    assert [m for m in loaded if m.rsplit(".", 1)[-1] in unused or m == "opentelemetry.sdk.metrics"] == []


SKIPPED_WORK = {
    "no exclusions, no header capture": {},
    "exclusions": {"OTEL_PYTHON_DJANGO_EXCLUDED_URLS": "echo-url"},
    "header capture": {
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-tenant",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "x-served-by",
    },
}


@pytest.mark.parametrize("settings", list(SKIPPED_WORK.values()), ids=list(SKIPPED_WORK))
def test_work_skipped_in_the_middleware_is_only_what_nothing_uses(receiver, workdir, settings):
    """The middleware skips URL building and header scans when no variable asks for them;
    the app still sees the real URL, and exclusions and header capture work when set."""
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_METRICS_EXPORTER="none",
        SHOP_DB=str(workdir / "shop.sqlite3"),
        **settings,
    )
    result = run([*launcher(), PYTHON, str(TARGETS / "django_url_views.py"), str(SHOP)], env, workdir)
    assert result.returncode == 0, result.stderr
    bodies = ["http://testserver/echo-url/?page=2", "acme", "http://testserver/other/", "acme"]
    assert result.stdout.split() == [*bodies, "http://testserver/legacy/7/", "acme", "404"]
    assert receiver.wait_for(lambda r: any(s.name == "GET" for s in r.spans), timeout=10)
    names = sorted(span.name for span in receiver.spans)
    # Named by route once Django has resolved it; by method alone when no route matches.
    served = ["GET", "GET /other/", "GET ^legacy/([0-9]+)/$"]
    assert names == sorted(served if "OTEL_PYTHON_DJANGO_EXCLUDED_URLS" in settings else [*served, "GET /echo-url/"])
    captured = {k: v for span in receiver.spans for k, v in span.attributes.items() if ".header." in k}
    if "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST" in settings:
        assert captured == {"http.request.header.x_tenant": ["acme"], "http.response.header.x_served_by": ["web-1"]}
    else:
        assert captured == {}


UPSTREAM = Path(PYTHON).parent / "opentelemetry-instrument"
ASKED_FOR_EVERYTHING = {
    **SKIPPED_WORK["header capture"],
    "OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS": "path_info,content_type",
}


SERVER_SCOPE = "opentelemetry.instrumentation.django"
SQL_SCOPE = "opentelemetry.instrumentation.sqlite3"
RECORDS_STATUSES = ["200", "200", "404", "500", "404", "200", "200", "200"]
# Instrumentors of libraries django_records.py never imports (in any cell's contrib release): they
# cannot record a span or a point there, and loading them (redis, httpx, psycopg, ...) would double
# the upstream run's start-up. The target imports django, sqlite3, celery (the shop's app), jinja2,
# threading, urllib, asyncio, logging: those stay enabled, as any instrumentor not named here.
UNIMPORTED = (
    "aiohttp-client",
    "asyncpg",
    "falcon",
    "httpx",
    "httpx2",
    "psycopg",
    "psycopg2",
    "pymemcache",
    "pymongo",
    "pymysql",
    "redis",
    "requests",
    "sqlalchemy",
    "starlette",
    "urllib3",
)
UPSTREAM_SKIPS = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ",".join(UNIMPORTED)}


def _run_records(receiver, command: list[str], env: dict[str, str], workdir: Path, spans: int = 8) -> None:
    receiver.clear()
    _records_arrived(_start_records(command, env, workdir), receiver, env, spans)


def _start_records(command: list[str], env: dict[str, str], workdir: Path) -> subprocess.Popen:
    target = [PYTHON, str(TARGETS / "django_records.py"), str(SHOP), *(["--asgi"] if env.get("ASGI") else [])]
    return start([*command, *target], env, workdir)


def _records_arrived(process: subprocess.Popen, receiver, env: dict[str, str], spans: int) -> None:
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        kill_group(process)
        pytest.fail(f"{process.args} did not finish within 60s")
    assert process.returncode == 0, err
    assert out.split() == RECORDS_STATUSES
    assert receiver.wait_for(lambda r: sum(s.scope == SERVER_SCOPE for s in r.spans) == spans, timeout=15)
    if env.get("OTEL_METRICS_EXPORTER") != "none":
        assert receiver.wait_for(lambda r: any(p.metric.startswith("http.server.") for p in r.points), timeout=15)


def _ours_and_upstreams(
    receivers: tuple, ours: list[str], env: dict[str, str], workdir: Path, spans: int = 8
) -> tuple[list[tuple], list[tuple]]:
    """The records of otel-launch (``ours``, its arguments) and of ``opentelemetry-instrument``, each
    to its own receiver: the two runs at once (each is mostly an interpreter's start-up, one a core).
    Same target, same settings, same database file; upstream without the instrumentors of libraries
    the target never imports (UNIMPORTED), whose loading is most of its start-up."""
    (mine, theirs) = receivers
    ours_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": mine.grpc_endpoint}
    upstream_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": theirs.grpc_endpoint, **UPSTREAM_SKIPS}
    processes = [_start_records(ours, ours_env, workdir), _start_records([str(UPSTREAM)], upstream_env, workdir)]
    try:
        _records_arrived(processes[0], mine, ours_env, spans)
        _records_arrived(processes[1], theirs, upstream_env, 8)
    finally:
        for process in processes:
            if process.returncode is None:
                kill_group(process)
    return _comparable(mine), _comparable(theirs)


def _comparable(receiver) -> list[tuple]:
    """Server and SQL spans and HTTP/DB metric points, comparable across tools: routes without
    their leading "/" (the one difference meant, see test_web), N+1 marks (ours alone) left out."""

    def unslashed(attributes: dict) -> list:
        return sorted(
            (k, v.lstrip("/") if k in ("http.route", "http.target") else v)
            for k, v in attributes.items()
            if not k.startswith("otel_launch.")
        )

    def client_error(span) -> bool:  # otel-launch's rule: a 4xx is not a server error (see test_web)
        code = span.attributes.get("http.status_code", span.attributes.get("http.response.status_code", 0))
        return span.scope == SERVER_SCOPE and code < 500

    by_id = {s.span_id: s for s in receiver.spans}
    spans = [
        (
            "span",
            s.scope,
            s.name.replace(" /", " "),
            s.kind,
            "UNSET" if client_error(s) else s.status,
            "" if client_error(s) else s.status_message,
            unslashed(s.attributes),
            by_id[s.parent_span_id].name.replace(" /", " ") if s.parent_span_id in by_id else None,
            [
                (e["name"], e.get("exception.type"), e.get("exception.message"))
                for e in s.events
                if e["name"] != "n_plus_one" and not client_error(s)
            ],
        )
        for s in receiver.spans
        if s.scope in (SERVER_SCOPE, SQL_SCOPE)
    ]
    points = [
        ("point", p.metric, p.value, p.count, unslashed(p.attributes))
        for p in receiver.points
        if p.metric.startswith(("http.server.", "db.client."))
    ]
    return sorted(spans, key=repr) + sorted(points, key=repr)


SEMCONV = {
    "old": {},
    "http": {"OTEL_SEMCONV_STABILITY_OPT_IN": "http"},
    "http-dup": {"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup"},
    "database": {"OTEL_SEMCONV_STABILITY_OPT_IN": "database"},
    "headers-and-request-attrs": {"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup", **ASKED_FOR_EVERYTHING},
    "asgi": {"ASGI": "1"},
    "asgi-http-dup-headers-and-request-attrs": {
        "ASGI": "1",
        "OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup",
        **ASKED_FOR_EVERYTHING,
    },
}


def _upstream_env(workdir: Path, **settings: str) -> dict[str, str]:
    """The records' settings (each run adds its receiver's endpoint)."""
    return clean_env(
        OTEL_METRIC_EXPORT_INTERVAL="600000",  # one export, at exit
        SHOP_DB=str(workdir / "shop.sqlite3"),
        # opentelemetry-instrument reads Django's settings at start-up: they must import then.
        DJANGO_SETTINGS_MODULE="shop.settings",
        PYTHONPATH=str(SHOP),
        **settings,
    )


@pytest.fixture
def receivers() -> Iterator[tuple[OTLPReceiver, OTLPReceiver]]:
    """Two real receivers: otel-launch's run and opentelemetry-instrument's, side by side."""
    with OTLPReceiver(grpc_port=0, http_port=0) as ours, OTLPReceiver(grpc_port=0, http_port=0) as upstream:
        yield ours, upstream


@pytest.mark.parametrize("settings", list(SEMCONV.values()), ids=list(SEMCONV))
def test_spans_and_metrics_are_what_opentelemetry_instrument_records(receivers, workdir, settings):
    """Our request and SQL paths record what the contrib's middleware and dbapi proxy record under
    ``opentelemetry-instrument``, in each semconv mode: the same span names, kinds, attributes,
    statuses, exception events, parents and metric points (active requests asked for, as it
    records them)."""
    env = _upstream_env(workdir, **settings)
    ours, upstream = _ours_and_upstreams(receivers, [*launcher(), "--http-active-requests", "true"], env, workdir)
    assert len([r for r in ours if r[:2] == ("span", SQL_SCOPE)]) == 19  # 10 + 4 + 5 on Django's, 1 raw
    assert ours == upstream


def test_unsampled_requests_record_the_same_metric_points_and_no_active_requests(receivers, workdir):
    """Not sampled, a request still gives the contrib's duration points (attributes read the
    lean way); http.server.active_requests only when asked for."""
    env = _upstream_env(workdir, OTEL_SEMCONV_STABILITY_OPT_IN="http/dup")
    ours, upstream = _ours_and_upstreams(receivers, [*launcher(), "--sampler", "always_off"], env, workdir, spans=0)
    assert [r for r in ours if r[0] == "span"] == []
    assert ours == [r for r in upstream if r[0] == "point" and r[1] != "http.server.active_requests"]


def test_ctrl_c_on_the_reloader_lets_the_serving_child_flush(receiver, workdir):
    """Django's reloader kills its child 0.25 s after Ctrl-C; the child's spans must still arrive."""
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none")
    process = start([*launcher(), PYTHON, str(TARGETS / "django_reloader.py"), "0.6"], env, workdir)
    try:
        assert select.select([process.stdout], [], [], 30)[0], "the serving child never started"
        child_pid = int(process.stdout.readline())  # printed once the child recorded its span
        os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
        _, err = process.communicate(timeout=30)
    finally:
        kill_group(process)
    assert process.returncode == 0, err
    assert child_pid != process.pid
    assert receiver.wait_for(lambda r: r.spans, timeout=5)
    assert [(s.name, s.attributes["target.pid"]) for s in receiver.spans] == [("served", child_pid)]


def test_the_sampler_decides_before_any_request_attribute_is_collected(workdir):
    """Sample-first: the sampler sees the method as the name, SERVER and no attributes; a request
    it keeps reaches span processors at on_start with every request attribute already set."""
    env = clean_env(OTEL_METRICS_EXPORTER="none", SHOP_DB=str(workdir / "shop.sqlite3"))
    result = run([*launcher(), PYTHON, str(TARGETS / "django_sampler_sees.py"), str(SHOP)], env, workdir)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["decisions"] == [{"name": "GET", "kind": "SpanKind.SERVER", "attributes": {}}] * 2
    (kept,) = seen["started"]  # the first was dropped: nothing was collected for it
    assert kept["attributes"]["http.url"] == "http://testserver/plain/?token=x"
    assert kept["attributes"]["http.user_agent"] == "curl/8"
    assert kept["attributes"]["http.method"] == "GET"


def test_n_plus_one_marks_the_server_span_of_a_view_repeating_one_statement(receiver, workdir):
    """10 identical statements mark the view's span (attributes and one event); 4 do not; every
    query is one span (Django's connection and a raw one side by side, never two a query)."""
    env = _upstream_env(workdir, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none")
    _run_records(receiver, launcher(), env, workdir)
    views = [s for s in receiver.spans if s.scope == SERVER_SCOPE and s.name == "GET /queries/<int:times>/"]
    marked = [s for s in receiver.spans if "otel_launch.n_plus_one.count" in s.attributes]
    assert len(views) == 2 and len(marked) == 1 and marked[0] in views  # the 4-query view: no mark
    (ten,) = marked
    mark = {"otel_launch.n_plus_one.statement": "SELECT %s + 1", "otel_launch.n_plus_one.count": 10}
    assert {k: ten.attributes[k] for k in mark} == mark
    assert [e for e in ten.events if e["name"] == "n_plus_one"] == [{"name": "n_plus_one", **mark}]
    sql = [s for s in receiver.spans if s.scope == SQL_SCOPE]
    by_statement = {}
    for span in sql:
        by_statement.setdefault(span.attributes["db.statement"], []).append(span)
    assert len(by_statement["SELECT %s + 1"]) == 14  # 10 + 4, each once
    assert len(by_statement["SELECT 2"]) == 1  # the raw sqlite3 connection, through the contrib
    assert len(by_statement["SELECT 1"]) == 1


def test_a_backend_no_instrumentation_covers_gets_its_query_spans_from_djangos_settings(receiver, workdir):
    # The driver's instrumentation (sqlite3) is off and the backend's connection class is its own:
    # only Django's execute_wrappers see these queries.
    database = workdir / "plain.sqlite3"
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="sqlite3",
    )
    result = run([*launcher(), PYTHON, str(TARGETS / "django_plain_backend.py"), str(database)], env, workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["plain_backend.base", "hunter2"]  # the driver no instrumentation knows
    assert receiver.wait_for(lambda r: len(r.spans) >= 4, timeout=10)
    (job,) = [span for span in receiver.spans if span.name == "job"]
    queries = [span for span in receiver.spans if span is not job]
    assert [span.name for span in queries] == ["CREATE", "INSERT", "SELECT"]  # one span a query
    for span in queries:
        assert span.parent_span_id == job.span_id and span.kind == 3  # CLIENT
        assert span.attributes["db.system"] == "sqlite" and span.attributes["db.name"] == str(database)
        assert "hunter2" not in json.dumps(span.attributes)
    assert queries[1].attributes["db.statement"] == "INSERT INTO secrets (value) VALUES (%s)"


def test_server_spans_follow_a_provider_the_app_sets_after_the_first_request(receiver, workdir):
    env = _shop_env(receiver, workdir)
    args = [*launcher(), PYTHON, str(TARGETS / "django_provider_after_first_request.py"), str(SHOP)]
    result = run(args, env, workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200 200 GET /health/"  # the second request's span is the app's provider's
    assert receiver.wait_for(lambda r: any(s.name == "GET /health/" for s in r.spans), timeout=10)
    servers = [s for s in receiver.spans if s.scope == "opentelemetry.instrumentation.django"]
    assert len(servers) == 1  # only the first request's reached otel-launch's exporter


@pytest.mark.parametrize("asked", [True, False], ids=["asked", "default"])
def test_enduser_id_is_the_signed_in_users_key_only_when_asked(receiver, workdir, asked):
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none")
    if asked:
        env["OTEL_LAUNCH_ENDUSER_ID"] = "true"
    result = run([*launcher(), PYTHON, str(TARGETS / "django_enduser.py"), str(workdir)], env, workdir)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key == "3"
    assert receiver.wait_for(lambda r: len([s for s in r.spans if s.scope == SERVER_SCOPE]) >= 4, timeout=10)
    servers = [s for s in receiver.spans if s.scope == SERVER_SCOPE]
    recorded = [(s.name, s.attributes.get("enduser.id")) for s in sorted(servers, key=lambda s: s.start_ns)]
    if asked:
        # Read: by the view; not loaded for a success that never read it; loaded for a failure; anonymous: none.
        expected = [("GET /whoami/", key), ("GET /plain/", None), ("GET /fail/", key), ("GET /whoami/", None)]
    else:
        expected = [("GET /whoami/", None), ("GET /plain/", None), ("GET /fail/", None), ("GET /whoami/", None)]
    assert recorded == expected
    assert all("not-recorded" not in json.dumps(s.attributes) for s in receiver.spans)


# --- trace context and baggage in, sampled or not (integrations/_lean_context.py) -------------------
# The request path skips the extraction for a request carrying none of the known propagators'
# headers, and asks any other propagator as it is: what the view and the server span see is what
# opentelemetry-instrument gives them.

INCOMING_TRACE_ID, INCOMING_SPAN_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
INCOMING = {"trace": "incoming", "span": "own"}
SERVER_KIND = 2  # SpanKind.SERVER + 1 in OTLP numbering


def _views_saw(process: subprocess.Popen) -> list[dict]:
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        kill_group(process)
        pytest.fail(f"{process.args} did not finish within 60s")
    assert process.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _server_spans_of(receiver: OTLPReceiver, count: int) -> list[tuple]:
    if count:
        assert receiver.wait_for(lambda r: sum(s.kind == SERVER_KIND for s in r.spans) == count, timeout=15)
    return sorted(
        (s.trace_id == INCOMING_TRACE_ID, s.parent_span_id == INCOMING_SPAN_ID, s.name.replace(" /", " "))
        for s in receiver.spans
        if s.kind == SERVER_KIND
    )


PROPAGATOR_SETTINGS = [None, "tracecontext,baggage", "baggage,tracecontext", "tracecontext", "b3"]
PROPAGATION_SAMPLERS = {"ratio-0": ("parentbased_traceidratio", "0"), "always-on": ("parentbased_always_on", "")}


@pytest.mark.parametrize(
    ("propagators", "sampler"),
    [(p, "ratio-0") for p in PROPAGATOR_SETTINGS] + [(None, "always-on")],
    ids=[f"{p or 'default'}-ratio-0" for p in PROPAGATOR_SETTINGS] + ["default-always-on"],
)
def test_the_view_and_the_server_span_see_what_opentelemetry_instrument_gives_them(
    receivers, workdir, propagators, sampler
):
    if propagators == "b3":
        pytest.importorskip("opentelemetry.propagators.b3")
    name, argument = PROPAGATION_SAMPLERS[sampler]
    settings = {"OTEL_TRACES_SAMPLER": name, "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    if argument:
        settings["OTEL_TRACES_SAMPLER_ARG"] = argument
    if propagators:
        settings["OTEL_PROPAGATORS"] = propagators
    env = clean_env(
        SHOP_DB=str(workdir / "shop.sqlite3"),
        DJANGO_SETTINGS_MODULE="shop.settings",  # opentelemetry-instrument reads them at start-up
        PYTHONPATH=str(SHOP),
        **UPSTREAM_SKIPS,
        **settings,
    )
    mine, theirs = receivers
    target = [PYTHON, str(TARGETS / "django_propagation.py"), str(SHOP)]
    processes = [
        start([*launcher(), *target], {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": mine.grpc_endpoint}, workdir),
        start([str(UPSTREAM), *target], {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": theirs.grpc_endpoint}, workdir),
    ]
    try:
        ours, upstream = _views_saw(processes[0]), _views_saw(processes[1])
    finally:
        for process in processes:
            if process.returncode is None:
                kill_group(process)
    assert len(ours) == 7
    assert ours == upstream
    # What each propagator carries, as it should: the W3C headers by the default, B3's by B3 alone.
    w3c, baggage = (
        propagators in (None, "tracecontext,baggage", "baggage,tracecontext", "tracecontext"),
        (propagators in (None, "tracecontext,baggage", "baggage,tracecontext")),
    )
    assert [{k: v for k, v in seen.items() if k in ("trace", "span")} == INCOMING for seen in ours] == [
        False,
        w3c,
        w3c,
        w3c,
        False,
        propagators == "b3",
        False,
    ]
    assert [seen["baggage"] for seen in ours][3:5] == (
        [{"tenant": "acme"}, {"tenant": "acme", "region": "eu"}] if baggage else [{}, {}]
    )
    # The server spans: the same, each in the caller's trace under the caller's span where it came in.
    recorded = sum(seen["sampled"] for seen in ours)
    assert _server_spans_of(mine, recorded) == _server_spans_of(theirs, recorded)
