"""The trace viewer's web side: a starlette app (JSON API + the page's static files) on uvicorn.

Only local readers: bound to loopback, the page and the API answer only to a loopback ``Host``
(``localhost``, ``127.0.0.1``, ``[::1]``, any port) and refuse others with 403, as Jupyter does,
so that a page on another site whose name was re-bound to 127.0.0.1 cannot read the traces.
``--all-interfaces`` turns the check off (and says so). Every answer carries a
Content-Security-Policy (own scripts, styles and requests only; no framing),
``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``
and ``Cross-Origin-Resource-Policy: same-origin``.

API (what the page itself uses):

- ``GET /api/traces?service=&status=error|ok&min_duration_ms=&q=&limit=``: trace summaries, the
  last received first.
- ``GET /api/traces/{trace_id}``: the trace, its resources (each once) and every span (ids,
  parent, name, service, kind, start, end, status, attributes, events, the key of its
  resource); at most :data:`TRACE_READS` are read and sent at once.
- ``GET /api/services``: the services seen, for the page's filter.
- ``GET /api/metrics/names?service=``: the metrics stored, their kind, unit and services.
- ``GET /api/metrics/series?name=&service=&since=&step=``: one metric over a window, per service
  and attribute set, in steps: counters as changes, gauges as last values, histograms as counts,
  sums and percentiles (``overview.py``).
- ``GET /api/logs?service=&severity=&trace_id=&q=&limit=``: log records, the newest first.
- ``GET /api/overview?since=&service=``: web routes, Celery tasks and workers, database statements.

docs/local-tools.md describes every field.
"""

from __future__ import annotations

import asyncio
import math
import signal
import socket
import sys
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

import click
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from otel_launch.local.listen import age_text, is_loopback_host, listen, listening_socket, shown_host, size_text
from otel_launch.local.receiver import Export, OTLPReceiver, Rejected
from otel_launch.local.ui.overview import Window, overview, series_answer
from otel_launch.local.ui.series import SEVERITIES, default_step, severity_number
from otel_launch.local.ui.store import DAY_S, NotAStore, QueryTooLong
from otel_launch.local.ui.telemetry import LOGS_LISTED, Store

STATIC = resources.files("otel_launch.local.ui") / "static"
TRACE_READS = 2  # traces read and sent at once: each may be an eighth of --max-bytes
TRACE_WAIT = 30.0  # seconds a trace read waits for its place, then 503
DEFAULT_SINCE_S = 900  # the window of /api/metrics/series and /api/overview when none is asked for
MAX_STEPS = 1000  # points of one series over its window
EXPIRE_EVERY_S = 60.0  # the age bound is applied this often (more often for a short --max-age)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class LocalOnly:
    """ASGI middleware: the security headers on every answer, and 403 for a ``Host`` that
    ``allowed_host`` refuses (a DNS-rebinding page names its own site)."""

    def __init__(self, app: ASGIApp, allowed_host: Callable[[str | None], bool] | None) -> None:
        self.app = app
        self.allowed_host = allowed_host
        self.headers = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
        if self.allowed_host is not None and not self.allowed_host(host):
            refusal = PlainTextResponse(
                f"otel-launch ui answers only to localhost, 127.0.0.1 or [::1] (this request named {host[:80]!r}): "
                "a page on another site cannot read your traces. To serve it under other names, start it with "
                "--all-interfaces.\n",
                status_code=403,
            )
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


class BadQuery(ValueError):
    pass


def _number(request: Request, name: str, default: float | None = None) -> float | None:
    text = request.query_params.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise BadQuery(f"{name} must be a non-negative number, not {text[:40]!r}")
    return value


def _window(request: Request, store: Store) -> Window:
    """The window a metrics read covers: ``since`` seconds back (capped at the store's age bound),
    in steps of ``step`` seconds (by default, at most about 120 of them)."""
    since = _number(request, "since", DEFAULT_SINCE_S) or 0
    if since <= 0:
        raise BadQuery(
            f"since must be a positive number of seconds, not {request.query_params.get('since', '')[:40]!r}"
        )
    since = min(since, store.max_age_s)
    step = _number(request, "step")
    if step is None:
        step = default_step(since)
    # step <= since also bounds it for the store's integer parameters (a step of 1e300 would overflow them).
    if step < 1 or step != int(step) or since / step > MAX_STEPS or step > since:
        raise BadQuery(
            f"step must be a whole number of seconds, at least 1 and since/{MAX_STEPS}, at most since"
            f" ({since:g}), not {request.query_params.get('step', '')[:40]!r}"
        )
    return Window(since, int(step))


def _severity(request: Request) -> int:
    text = request.query_params.get("severity", "").strip().upper()
    if not text:
        return 0
    number = severity_number(text)
    if not number:
        raise BadQuery(f"severity must be one of {', '.join(name for name, _ in SEVERITIES)}, not {text[:20]!r}")
    return number


def _answer(compute: Callable[[], Any]) -> JSONResponse:
    """The JSON of ``compute()``; 400 for a bad parameter, 503 for a read over its time bound."""
    try:
        return JSONResponse(compute(), headers=NO_STORE)
    except BadQuery as exc:
        return JSONResponse({"error": str(exc)}, status_code=400, headers=NO_STORE)
    except QueryTooLong as exc:
        return JSONResponse({"error": f"{exc}; narrow the window"}, status_code=503, headers=NO_STORE)


def create_app(store: Store, local_only: bool = True) -> ASGIApp:
    """The web app over ``store``; with ``local_only``, for a loopback ``Host`` only.

    The API's handlers are plain functions: starlette runs them on its thread pool, so that a
    long search never holds the event loop (nor the store's writer: reads have their own connection).
    """
    page = str(STATIC / "index.html")

    async def index(request: Request) -> FileResponse:
        return FileResponse(page, headers={"Cache-Control": "no-store"})

    def list_traces(request: Request) -> JSONResponse:
        try:
            min_duration = _number(request, "min_duration_ms")
            limit = int(_number(request, "limit", 100) or 100)
        except BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        status = request.query_params.get("status") or None
        if status not in (None, "error", "ok"):
            return JSONResponse({"error": "status must be 'error' or 'ok'"}, status_code=400)
        try:
            traces = store.list_traces(
                service=request.query_params.get("service") or None,
                status=status,
                min_duration_ms=min_duration,
                q=request.query_params.get("q") or None,
                limit=min(limit, 1000),
            )
            stored = store.trace_count()
        except QueryTooLong as exc:
            return JSONResponse({"error": f"{exc}; narrow the search"}, status_code=503, headers=NO_STORE)
        return JSONResponse({"traces": traces, "stored": stored, "max_traces": store.max_traces}, headers=NO_STORE)

    def services(request: Request) -> JSONResponse:
        return JSONResponse({"services": store.services()}, headers=NO_STORE)

    def service_of(request: Request) -> str | None:
        return request.query_params.get("service") or None

    def metric_names(request: Request) -> JSONResponse:
        return _answer(lambda: {"metrics": store.metric_names(service_of(request))})

    def metric_series(request: Request) -> JSONResponse:
        def compute() -> Any:
            name = request.query_params.get("name", "")
            if not name:
                raise BadQuery("name is required: a metric's name (see /api/metrics/names)")
            found = series_answer(store, name, service_of(request), _window(request, store))
            if found is None:
                raise LookupError(name)
            return found

        try:
            return _answer(compute)
        except LookupError:
            return JSONResponse({"error": "no such metric"}, status_code=404, headers=NO_STORE)

    def logs(request: Request) -> JSONResponse:
        def compute() -> Any:
            limit = _number(request, "limit", 200)
            if limit is None or limit < 1 or limit > LOGS_LISTED or limit != int(limit):
                raise BadQuery(f"limit must be a whole number from 1 to {LOGS_LISTED}")
            trace_id = request.query_params.get("trace_id", "").lower() or None
            if trace_id is not None and (len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id)):
                raise BadQuery("trace_id must be 32 hexadecimal digits")
            found, stored = store.logs(
                service=service_of(request),
                min_severity=_severity(request),
                trace_id=trace_id,
                q=request.query_params.get("q") or None,
                limit=int(limit),
            )
            return {"logs": found, "stored": stored}

        return _answer(compute)

    def overview_answer(request: Request) -> JSONResponse:
        return _answer(lambda: overview(store, service_of(request), _window(request, store)))

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/trace/{trace_id}", index),
            Route("/overview", index),
            Route("/logs", index),
            Route("/api/traces", list_traces),
            Route("/api/traces/{trace_id}", OneTrace(store), methods=["GET", "HEAD"]),
            Route("/api/services", services),
            Route("/api/metrics/names", metric_names),
            Route("/api/metrics/series", metric_series),
            Route("/api/logs", logs),
            Route("/api/overview", overview_answer),
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ]
    )
    return LocalOnly(app, is_loopback_host if local_only else None)


NO_STORE = {"Cache-Control": "no-store"}


class OneTrace:
    """``GET /api/traces/{trace_id}``, at most :data:`TRACE_READS` at a time, each holding its place
    until its answer is sent: a page (or a site the browser visits) asking many times over holds
    that many traces in memory, not one per request. A read that waits :data:`TRACE_WAIT` seconds
    for its place is answered 503 (the page asks again)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.places = asyncio.Semaphore(TRACE_READS)

    def answer(self, trace_id: str) -> Response:
        try:
            pieces = self.store.trace_json(trace_id.lower())
        except QueryTooLong as exc:
            return JSONResponse({"error": str(exc)}, status_code=503, headers=NO_STORE)
        if pieces is None:
            return JSONResponse({"error": "no such trace"}, status_code=404, headers=NO_STORE)
        return StreamingResponse(pieces, media_type="application/json", headers=NO_STORE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.wait_for(self.places.acquire(), TRACE_WAIT)
        except asyncio.TimeoutError:
            busy = {"error": f"{TRACE_READS} traces are being read; retry"}
            await JSONResponse(busy, status_code=503, headers={**NO_STORE, "Retry-After": "1"})(scope, receive, send)
            return
        try:
            response = await run_in_threadpool(self.answer, scope["path_params"]["trace_id"])
            await response(scope, receive, send)
        finally:
            self.places.release()


def _bind(host: str, port: int) -> socket.socket:
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen for the web page on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _expiring(store: Store, stop: threading.Event) -> threading.Thread:
    """A thread that applies the store's age bound every :data:`EXPIRE_EVERY_S` seconds (a
    quarter of the bound when that is shorter), until ``stop``."""
    every = max(0.5, min(EXPIRE_EVERY_S, store.max_age_s / 4))

    def run() -> None:
        while not stop.wait(every):
            try:
                store.expire()
            except Exception as exc:  # noqa: BLE001 - said once a time; the next round tries again
                sys.stderr.write(
                    f"otel-launch ui: the store could not drop old data: {type(exc).__name__}: {exc}"[:300] + "\n"
                )

    thread = threading.Thread(target=run, name="otel-launch-ui-expire", daemon=True)
    thread.start()
    return thread


def serve(
    host: str,
    port: int,
    grpc_port: int,
    http_port: int,
    db: str,
    max_traces: int,
    max_bytes: int,
    local_only: bool,
    max_age_s: float = DAY_S,
) -> None:
    """Receive (traces, metrics and logs), store and serve until SIGINT/SIGTERM. ``local_only``:
    loopback ``Host`` only, on the page, the API and OTLP/HTTP."""
    try:
        store = Store(db, max_traces=max_traces, max_bytes=max_bytes, max_age_s=max_age_s)
    except NotAStore as exc:
        raise click.BadParameter(str(exc), param_hint="'--db'") from None
    try:
        web_socket = _bind(host, port)
    except click.ClickException:
        store.close()
        raise

    def on_receive(kind: str, export: Export) -> Rejected:
        if kind == "metrics":
            return store.add_points(export)
        if kind == "logs":
            return store.add_logs(export)
        return store.add_export(export, export.trace_ids_from_last())

    signals = ("traces", "metrics", "logs")
    receiver = OTLPReceiver.viewer(on_receive, host, grpc_port, http_port, signals, local_only)
    try:
        listen(receiver)
    except click.ClickException:
        web_socket.close()
        store.close()
        raise
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else shown_host(host)
    where = shown_host(host)
    ports = f"{web_socket.getsockname()[1]}, {receiver.grpc_port} and {receiver.http_port}"
    reach = (
        f"; on all interfaces ({'IPv6 and IPv4' if host == '::' else 'IPv4'}): anyone who can reach ports {ports} "
        "can read every trace and send spans"
        if not local_only
        else ""
    )
    page = f"http://{shown}:{web_socket.getsockname()[1]}/"
    sys.stdout.write(
        f"otel-launch ui: {page}  overview: {page}overview  "
        f"(OTLP/gRPC on {where}:{receiver.grpc_port}, OTLP/HTTP on {where}:{receiver.http_port}; "
        f"store {db}, at most {max_traces} traces, {size_text(max_bytes)} and {age_text(max_age_s)}{reach}; "
        "Ctrl-C to stop)\n"
    )
    if store.started_afresh:
        sys.stdout.write(f"otel-launch ui: {db} was written by an older otel-launch: its traces were dropped\n")
    sys.stdout.flush()
    config = uvicorn.Config(
        create_app(store, local_only=local_only),
        log_level="warning",
        access_log=False,
        lifespan="off",
        limit_concurrency=64,
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler it
    # found: make that a quiet return, so that the store is closed and the exit status is 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    stop_expiring = threading.Event()
    expiring = _expiring(store, stop_expiring)
    try:
        uvicorn.Server(config).run(sockets=[web_socket])
    except KeyboardInterrupt:
        pass
    finally:
        stop_expiring.set()
        receiver.stop()
        expiring.join(10)
        store.close()
        web_socket.close()
