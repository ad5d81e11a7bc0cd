"""The catalogue on real processes: instrumentations otel-launch has no module for, loaded lazily.

jinja2 (opentelemetry-instrumentation-jinja2, in the test extra) stands for any of them; the
HTTP clients are the ones otel-launch ships.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, launcher, otel_env, run

pytestmark = pytest.mark.process
pytest.importorskip("jinja2")
JINJA2_SCOPE = "opentelemetry.instrumentation.jinja2"
CLIENT = 3  # SpanKind.CLIENT + 1 in OTLP numbering


def jinja2_spans(receiver) -> list:
    return [span for span in receiver.spans if span.scope == JINJA2_SCOPE]


def test_an_instrumentation_we_have_no_module_for_makes_its_spans(receiver, workdir):
    result = run([*launcher(), PYTHON, str(TARGETS / "jinja2_in_span.py")], otel_env(receiver), workdir)
    assert result.returncode == 0 and result.stdout.strip() == "Hello world", result.stderr
    assert receiver.wait_for(lambda r: any(s.name == "page" for s in r.spans), timeout=10)
    (page,) = [s for s in receiver.spans if s.name == "page"]
    names = sorted(s.name for s in jinja2_spans(receiver))
    assert "jinja2.render" in names and "jinja2.load" in names, names
    assert all(s.trace_id == page.trace_id for s in jinja2_spans(receiver))
    assert result.stderr == ""


def test_a_process_that_never_imports_the_library_never_loads_its_instrumentation(workdir):
    result = run([*launcher(), PYTHON, str(TARGETS / "loaded_modules.py")], clean_env(), workdir)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "otel_launch._runtime.integrations._catalogue" in loaded  # the catalogue was read
    assert not [name for name in loaded if name.startswith("opentelemetry")], loaded
    assert "jinja2" not in loaded


def test_importing_the_http_clients_loads_no_telemetry_until_the_first_call(workdir):
    # A management command or a CLI that imports requests (its views do) and never calls it
    # must not build the SDK: the instrumentation runs at the first call.
    code = (
        "import json, sys, requests, httpx, urllib3, urllib.request; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('opentelemetry'))))"
    )
    result = run([*launcher(), PYTHON, "-c", code], clean_env(), workdir)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_a_child_without_the_launchers_scan_scans_for_itself(receiver, workdir):
    # A grandchild whose environment lost the hand-off (here: removed on purpose).
    command = f"unset _OTEL_LAUNCH_CATALOGUE; exec {PYTHON} {TARGETS / 'jinja2_in_span.py'}"
    result = run([*launcher(), "sh", "-c", command], otel_env(receiver), workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: jinja2_spans(r), timeout=10), [s.name for s in receiver.spans]


def test_disabled_by_its_entry_point_name(receiver, workdir):
    env = otel_env(receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="jinja2")
    result = run([*launcher(), PYTHON, str(TARGETS / "jinja2_in_span.py")], env, workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: any(s.name == "page" for s in r.spans), timeout=10)
    assert jinja2_spans(receiver) == []
    assert "not known" not in result.stderr  # a catalogue name is a known name


def test_a_library_outside_the_supported_range_is_skipped_with_one_warning(receiver, workdir: Path):
    # A jinja2 1.0 dist-info first on the path: what the version check reads (the real jinja2
    # is still what is imported).
    fake = workdir / "old" / "jinja2-1.0.dist-info"
    fake.mkdir(parents=True)
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: jinja2\nVersion: 1.0\n\n")
    (fake / "top_level.txt").write_text("jinja2\n")
    env = otel_env(receiver, PYTHONPATH=str(workdir / "old"))
    result = run([*launcher(), PYTHON, str(TARGETS / "jinja2_in_span.py")], env, workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: any(s.name == "page" for s in r.spans), timeout=10)
    assert jinja2_spans(receiver) == []
    lines = result.stderr.splitlines()
    assert lines == [
        "otel-launch: warning: jinja2 is not instrumented: its instrumentation supports jinja2<4.0,>=2.7, "
        "installed: jinja2 1.0"
    ]


def test_outgoing_http_client_spans_and_traceparent_only_inside_a_span(receiver, workdir):
    result = run([*launcher(), PYTHON, str(TARGETS / "outgoing_http.py"), "parent"], otel_env(receiver), workdir)
    assert result.returncode == 0, result.stderr
    calls = json.loads(result.stdout)
    received = {call["path"].partition("?")[0]: call["traceparent"] for call in calls}
    # Baggage goes with the trace context; outside a span no header at all (nothing injected).
    assert {call["path"].partition("?")[0]: call["baggage"] for call in calls} == {
        path: ("tenant=acme" if "outside" not in path else None) for path in received
    }
    assert receiver.wait_for(lambda r: any(s.name == "parent" for s in r.spans), timeout=10)
    (parent,) = [s for s in receiver.spans if s.name == "parent"]
    clients = {s.span_id: s for s in receiver.spans if s.kind == CLIENT}
    libraries = ["requests", "urllib", "urllib3", "httpx", "httpx-async"]
    # Outside any span: no span, no header (so the downstream service decides for itself).
    assert [received[f"/{library}-outside"] for library in libraries] == [None] * len(libraries)
    # Inside: one CLIENT span per call (requests' urllib3 adds none), its id in the header.
    assert len(clients) == len(libraries) + 1
    for path in [f"/{library}-inside" for library in libraries] + ["/missing"]:
        version, trace_id, span_id, flags = received[path].split("-")
        assert trace_id == parent.trace_id and flags in ("01", "03")
        span = clients[span_id]
        assert span.parent_span_id == parent.span_id and span.name == "GET"
        assert span.attributes["http.method"] == "GET" and span.attributes["http.url"].partition("?")[0].endswith(path)
        assert span.attributes["http.status_code"] == (404 if path == "/missing" else 200)
    assert len(receiver.spans) == len(clients) + 1


def test_an_app_that_instruments_requests_itself_keeps_its_instrumentation(receiver, workdir):
    result = run([*launcher(), PYTHON, str(TARGETS / "app_instruments_requests.py")], otel_env(receiver), workdir)
    assert result.returncode == 0 and result.stdout.split() == ["204", "204"], result.stderr
    assert receiver.wait_for(lambda r: any(s.name == "app-span" for s in r.spans), timeout=10)
    clients = [s for s in receiver.spans if s.kind == CLIENT]
    assert [s.scope for s in clients] == ["opentelemetry.instrumentation.requests"] * 2  # once each
    assert result.stderr == ""


def test_the_exporters_own_http_requests_are_never_traced(receiver, workdir):
    # The OTLP/HTTP exporter sends with requests/urllib3, both instrumented in this process.
    url = receiver.http_endpoint + "/not-otlp"
    env = otel_env(receiver, "http/protobuf", OTEL_METRICS_EXPORTER="otlp")
    result = run([*launcher(), PYTHON, str(TARGETS / "exporter_over_http.py"), url], env, workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: any(s.name == "work" for s in r.spans), timeout=10)
    assert receiver.wait_for(lambda r: r.points, timeout=10)  # the metrics export ran too
    clients = [s for s in receiver.spans if s.kind == CLIENT]
    assert sorted(s.scope.rpartition(".")[2] for s in clients) == ["requests", "urllib3"]
    assert all(s.attributes["http.url"] == url and s.attributes["http.method"] == "GET" for s in clients)
    assert len(receiver.spans) == 3


def test_the_launcher_hands_its_scan_to_the_child(workdir):
    code = "import os; print(os.environ['_OTEL_LAUNCH_CATALOGUE'])"
    result = run([*launcher(), PYTHON, "-c", code], clean_env(), workdir)
    assert result.returncode == 0, result.stderr
    key, _, body = result.stdout.strip().partition(";")
    assert key == f"{sys.version_info[0]}.{sys.version_info[1]}:{sys.prefix}"
    names = [record.split(" ")[0] for record in body.split(";")]
    assert {"requests", "urllib", "urllib3", "httpx", "jinja2"} <= set(names)
    assert not {"django", "celery", "redis", "sqlite3", "psycopg", "psycopg2", "logging"} & set(names)
