"""The trace viewer's web side: a starlette app (JSON API + the page's static files) on uvicorn.

API (what the page itself uses):

- ``GET /api/traces?service=&status=error|ok&min_duration_ms=&q=&limit=``: trace summaries, newest first.
- ``GET /api/traces/{trace_id}``: the trace and every span (ids, parent, name, service, kind,
  start, end, status, attributes, events, resource).
- ``GET /api/services``: the services seen, for the page's filter.
"""

from __future__ import annotations

import math
import signal
import socket
import sys
from importlib import resources
from typing import Any

import click
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from otel_launch._receiver import OTLPReceiver
from otel_launch._tail import listen
from otel_launch.local.ui.store import TraceStore

STATIC = resources.files("otel_launch.local.ui") / "static"


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


def create_app(store: TraceStore) -> Starlette:
    """The web app over ``store``."""
    page = str(STATIC / "index.html")

    async def index(request: Request) -> FileResponse:
        return FileResponse(page, headers={"Cache-Control": "no-store"})

    async def list_traces(request: Request) -> JSONResponse:
        try:
            min_duration = _number(request, "min_duration_ms")
            limit = int(_number(request, "limit", 100) or 100)
        except BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        status = request.query_params.get("status") or None
        if status not in (None, "error", "ok"):
            return JSONResponse({"error": "status must be 'error' or 'ok'"}, status_code=400)
        traces = store.list_traces(
            service=request.query_params.get("service") or None,
            status=status,
            min_duration_ms=min_duration,
            q=request.query_params.get("q") or None,
            limit=min(limit, 1000),
        )
        return JSONResponse({"traces": traces, "stored": store.trace_count(), "max_traces": store.max_traces})

    async def get_trace(request: Request) -> JSONResponse:
        trace = store.get_trace(request.path_params["trace_id"].lower())
        if trace is None:
            return JSONResponse({"error": "no such trace"}, status_code=404)
        return JSONResponse(trace)

    async def services(request: Request) -> JSONResponse:
        return JSONResponse({"services": store.services()})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/trace/{trace_id}", index),
            Route("/api/traces", list_traces),
            Route("/api/traces/{trace_id}", get_trace),
            Route("/api/services", services),
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ]
    )


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen for the web page on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(host: str, port: int, grpc_port: int, http_port: int, db: str, max_traces: int) -> None:
    """Receive, store and serve until SIGINT/SIGTERM."""
    web_socket = _bind(host, port)
    store = TraceStore(db, max_traces=max_traces)

    def on_receive(kind: str, items: list[Any]) -> None:
        if kind == "traces" and items:
            store.add(items)

    receiver = OTLPReceiver(grpc_port=grpc_port, http_port=http_port, host=host, on_receive=on_receive)
    try:
        listen(receiver, host)
    except click.ClickException:
        web_socket.close()
        store.close()
        raise
    shown = "127.0.0.1" if host == "0.0.0.0" else host
    sys.stdout.write(
        f"otel-launch ui: http://{shown}:{web_socket.getsockname()[1]}/  "
        f"(OTLP/gRPC on {host}:{receiver.grpc_port}, OTLP/HTTP on {host}:{receiver.http_port}; "
        f"store {db}, at most {max_traces} traces; Ctrl-C to stop)\n"
    )
    sys.stdout.flush()
    config = uvicorn.Config(create_app(store), log_level="warning", access_log=False, lifespan="off")
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler it
    # found: make that a quiet return, so that the store is closed and the exit status is 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.Server(config).run(sockets=[web_socket])
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        store.close()
        web_socket.close()
