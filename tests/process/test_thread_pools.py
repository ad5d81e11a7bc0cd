"""Work handed to threads stays in its trace, and a library instrumented at its first use leaves
no window for an untraced call (integrations/threads.py, integrations/_first_use.py)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, launcher, run

pytestmark = pytest.mark.process
UPSTREAM = Path(PYTHON).parent / "opentelemetry-instrument"
SCOPES = {"sqlite": "sqlite3", "http": "requests"}


def _pool_app_env(receiver, workdir: Path, **extra: str) -> dict[str, str]:
    (workdir / "broker").mkdir(exist_ok=True)
    return clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_METRICS_EXPORTER="none",
        POOL_APP_DB=str(workdir / "pool.sqlite3"),
        POOL_APP_BROKER_DIR=str(workdir / "broker"),
        **extra,
    )


def _serve(receiver, workdir: Path, *flags: str, requests: int = 2, **env: str) -> None:
    pytest.importorskip("django")
    args = [*launcher(), *flags, PYTHON, str(TARGETS / "pool_app_client.py"), *["/pool/"] * requests]
    result = run(args, _pool_app_env(receiver, workdir, **env), workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["200 0,1,2"] * requests
    assert receiver.wait_for(lambda r: sum(s.name == "SELECT" for s in r.spans) >= 3 * requests, timeout=10)


def test_a_views_thread_pool_keeps_its_queries_in_the_request(receiver, workdir):
    """django-health-check's shape: the view runs queries in a ThreadPoolExecutor, one Django
    connection a pool thread. Each request's three SELECTs are children of its server span."""
    _serve(receiver, workdir)
    servers = [s for s in receiver.spans if s.name == "GET /pool/"]
    assert len(servers) == 2
    for server in servers:
        children = [s for s in receiver.spans if s.parent_span_id == server.span_id]
        assert sorted(s.name for s in children) == ["SELECT"] * 3
        assert all(s.trace_id == server.trace_id for s in children)
    assert [s for s in receiver.spans if s.name == "SELECT" and not s.parent_span_id] == []


def test_the_first_requests_queries_from_pool_threads_are_all_traced(receiver, workdir):
    """SQLite is instrumented at its first connect; pool threads connecting meanwhile used to get
    the driver's own connect and keep an untraced connection for their life (the first request
    recorded 1 of its 3 queries). The thread context is off here: only the window is tested."""
    _serve(receiver, workdir, "--disable", "threading")
    assert receiver.wait_for(lambda r: sum(s.name == "SELECT" for s in r.spans) == 6, timeout=5)
    roots = [s for s in receiver.spans if s.name == "SELECT"]
    assert len(roots) == 6 and all(not s.parent_span_id for s in roots)  # no context carried: off


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


@contextlib.contextmanager
def _http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("client", "span_name"), [("sqlite", "SELECT"), ("http", "GET")])
def test_first_calls_made_by_many_threads_at_once_are_all_traced(receiver, workdir, client, span_name):
    """16 threads make their first call while the first one instruments the library: each call is
    a span inside its thread's span (sqlite3.connect; requests' Session.send)."""
    if client == "http":
        pytest.importorskip("requests")
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none")
    with _http_server() as url:
        result = run([*launcher(), PYTHON, str(TARGETS / "first_use_from_threads.py"), client, url], env, workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: sum(s.name.startswith("thread-") for s in r.spans) == 16, timeout=10)
    threads = {s.span_id: s for s in receiver.spans if s.name.startswith("thread-")}
    assert receiver.wait_for(lambda r: sum(s.name == span_name for s in r.spans) >= 16, timeout=5)
    calls = [s for s in receiver.spans if s.name == span_name]
    assert len(calls) == 16 and {s.parent_span_id for s in calls} == set(threads)
    # requests' own spans (a call that missed requests' instrumentation is urllib3's span instead)
    assert {s.scope for s in calls} == {f"opentelemetry.instrumentation.{SCOPES[client]}"}


def _structure(receiver) -> dict[str, str]:
    by_id = {s.span_id: s for s in receiver.spans}
    return {s.name: by_id[s.parent_span_id].name if s.parent_span_id else "" for s in receiver.spans}


def test_thread_context_is_what_the_contribs_threading_instrumentation_gives(receiver, workdir):
    """Side by side with ``opentelemetry-instrument`` and opentelemetry-instrumentation-threading:
    spans started in a pool thread, a Thread and a Timer have the same parent under both."""
    pytest.importorskip("opentelemetry.instrumentation.threading")
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none"
    )
    script = [PYTHON, str(TARGETS / "thread_context.py")]
    expected = {"parent": "", "pool-a": "parent", "pool-b": "parent", "thread": "parent", "timer": "parent"}
    expected["after"] = ""
    for command in ([*launcher(), *script], [str(UPSTREAM), *script]):
        receiver.clear()
        result = run(command, env, workdir)
        assert result.returncode == 0, result.stderr
        if command[0] != str(UPSTREAM):  # ours carried the context: the contrib was never loaded
            assert result.stdout.strip() == "contrib threading instrumentation loaded: False"
        assert receiver.wait_for(lambda r: len(r.spans) == 6, timeout=10), command
        assert _structure(receiver) == expected, command
