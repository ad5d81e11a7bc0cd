"""Instructions of each piece of an unsampled Django request's telemetry, counted apart: where the
difference to plain goes, call by call (docs/cost.md, "An unsampled request or task costs its
propagation and its metrics").

``python bench/request_pieces.py [PIECE ...]`` runs, for each piece, this script under otel-launch
(``parentbased_traceidratio`` at 0: every request unsampled) and ``valgrind --tool=callgrind
--separate-threads=yes``, calling the piece ``BENCH_PIECE_CALLS`` times (20000), and prints the
main thread's instructions a call above a run calling nothing (start-up, and the export threads,
cancel out). The pieces (default: all):

- ``extract_api`` / ``extract_lean``: ``propagate.extract`` of a request without trace headers, and
  the request path's (``integrations/_lean_context.extract_wsgi``);
- ``attach_api`` / ``attach_lean``: the span put in the context, attached and detached, by the
  API's functions and by the request path's;
- ``start_span``: the request path's tracer (through its sample-first wrapper); ``start_span_raw``
  the SDK's own tracer with the same sampler and no wrapper;
- ``config``, ``view`` (``process_view``), ``durations`` (finding the bound measurements),
  ``record`` (one bound measurement), ``middleware`` (the middleware's ``__call__`` around a view
  that returns at once: everything but Django's call of it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIECES = [
    "extract_api",
    "extract_lean",
    "attach_api",
    "attach_lean",
    "start_span",
    "start_span_raw",
    "config",
    "view",
    "durations",
    "record",
    "middleware",
]


def run(piece: str, calls: int) -> None:
    """Call one piece ``calls`` times, in a process otel-launch started."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    sys.path.insert(0, str(ROOT / "examples" / "shop"))
    import django

    django.setup()
    from django.http import HttpResponse
    from django.test import RequestFactory
    from opentelemetry import context, propagate, trace
    from opentelemetry.instrumentation.wsgi import wsgi_getter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from otel_launch._runtime.integrations import _lean_context
    from otel_launch._runtime.integrations.django import request as path

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/health/",
        "HTTP_HOST": "127.0.0.1:8000",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "RAW_URI": "/health/",
    }
    c = path.config()
    raw = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0))).get_tracer("raw")
    empty = context.Context()
    span = trace.NonRecordingSpan(trace.SpanContext(1, 2, False))
    request = RequestFactory().get("/health/")
    response = HttpResponse("ok")
    middleware = path.OpenTelemetryMiddleware(lambda r: response)
    state = type("State", (), {"config": c, "route": "/health/", "is_asgi": False})()
    server = trace.SpanKind.SERVER
    if piece == "extract_api":
        for _ in range(calls):
            propagate.extract(environ, getter=wsgi_getter)
    elif piece == "extract_lean":
        for _ in range(calls):
            _lean_context.extract_wsgi(environ, wsgi_getter)
    elif piece == "attach_api":
        for _ in range(calls):
            context.detach(context.attach(trace.set_span_in_context(span, empty)))
    elif piece == "attach_lean":
        for _ in range(calls):
            _lean_context.detach(_lean_context.attach(path._with_span(span, empty)))
    elif piece == "start_span":
        for _ in range(calls):
            c.tracer.start_span("GET", context=empty, kind=server)
    elif piece == "start_span_raw":
        for _ in range(calls):
            raw.start_span("GET", context=empty, kind=server)
    elif piece == "config":
        for _ in range(calls):
            path.config()
    elif piece == "view":
        for _ in range(calls):
            middleware.process_view(request, None, (), {})
    elif piece == "durations":
        for _ in range(calls):
            path._durations(request, state, 200)
    elif piece == "record":
        bound = path._durations(request, state, 200)[0] or path._durations(request, state, 200)[1]
        for _ in range(calls):
            bound.record(1)
    elif piece == "middleware":
        for _ in range(calls):
            middleware(request)
    elif piece != "none":
        raise SystemExit(f"bench: no piece {piece!r}")


def counted(piece: str, calls: int, workdir: Path) -> int:
    """The main thread's instructions of one run under callgrind."""
    out = workdir / f"cg-{piece}-{calls}"
    launcher = Path(sys.executable).parent / "otel-launch"
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "SHOP_DB": str(workdir / "shop.sqlite3"),
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",  # nothing listens: nothing exported in the run
    }
    command = [
        str(launcher),
        *("--sampler", "parentbased_traceidratio", "--sample-rate", "0"),
        *("valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}"),
        sys.executable,
        __file__,
        "--run",
        piece,
        str(calls),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return int(re.search(r"^summary: (\d+)", Path(f"{out}-01").read_text(errors="replace"), re.M).group(1))


def main() -> None:
    if sys.argv[1:2] == ["--run"]:
        return run(sys.argv[2], int(sys.argv[3]))
    calls = int(os.environ.get("BENCH_PIECE_CALLS", "20000"))
    with tempfile.TemporaryDirectory(prefix="otel-launch-bench-pieces-") as workdir:
        base = counted("none", 0, Path(workdir))
        for piece in sys.argv[1:] or PIECES:
            per = (counted(piece, calls, Path(workdir)) - base) / calls
            print(f"{piece:16s} {per / 1000:6.1f}k instructions a call", flush=True)


if __name__ == "__main__":
    main()
