"""Per-request cost of the Django request path, in one process: the shop's WSGI application called
N times in a loop, as gunicorn's sync worker calls it (the same environ keys), on the trivial view
(``/health/``) or the list view (``/customers/``, 1 + 10 SQL queries on SQLite).

``python bench/django_micro.py VARIANT VIEW [N]``; VIEW is ``trivial`` or ``list``; VARIANT is
``plain``, ``otel-launch`` (our runtime, started with the environment the launcher writes),
``otel-launch-10`` (``parentbased_traceidratio`` 0.1), ``otel-launch-0`` (the same sampler at 0:
every request unsampled, the path 90% of requests take at 10%) or ``contrib`` (the contrib's
Django and sqlite3 instrumentors, as ``opentelemetry-instrument`` runs them). With
``BENCH_BEFORE_SRC=<dir>`` (a checkout's root: ``git archive <commit> otel_launch | tar -x -C
<dir>``), that checkout's ``otel_launch`` runs instead of the installed one: before and after in
one run. ``BENCH_PROFILE``: see _micro.py.

Spans go to an OTLP receiver in another process, so export costs what it costs in a worker; the
figure printed is the process's CPU time a request (all threads: export included). For
instructions a request (callgrind), see instructions.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _micro import GCPauses, plain_environment, prepare, profiled, receiver, shutdown

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop"
PATHS = {"trivial": "/health/", "list": "/customers/"}


def seed(database: Path) -> None:
    """The shop's SQLite database with 200 orders over 20 customers, made by a plain process."""
    env = {**plain_environment(), "SHOP_DB": str(database), "DJANGO_SETTINGS_MODULE": "shop.settings"}
    python = str(Path(sys.executable).parent / "python")
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=SHOP, env=env, check=True, timeout=120)
    code = (
        "from orders.models import Order; Order.objects.all().delete(); "
        "Order.objects.bulk_create([Order(customer=f'c{i % 20}', total_cents=100 + i) for i in range(200)])"
    )
    subprocess.run([python, "manage.py", "shell", "-c", code], cwd=SHOP, env=env, check=True, timeout=120)


def contrib() -> None:
    """What ``opentelemetry-instrument`` sets up for this app: SDK, OTLP/gRPC, Django and sqlite3."""
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider([PeriodicExportingMetricReader(OTLPMetricExporter())]))
    DjangoInstrumentor().instrument()
    SQLite3Instrumentor().instrument()


def wsgi_environ(path: str) -> dict:
    """What gunicorn's sync worker hands the application for ``GET path`` from wrk."""
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "RAW_URI": path,
        "REQUEST_URI": path,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.errors": sys.stderr,
        "wsgi.file_wrapper": None,
        "gunicorn.socket": None,
    }


def serve(application, path: str, count: int) -> None:
    template = wsgi_environ(path)
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    for _ in range(count):
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(b"")
        response = application(environ, start_response)
        for _chunk in response:
            pass
        response.close()
    if any(not status.startswith("200") for status in statuses):
        raise SystemExit(f"bench: {path} answered {sorted(set(statuses))}")


def main() -> None:
    variant, view = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    workdir = Path(tempfile.mkdtemp(prefix="otel-launch-bench-micro-"))
    try:
        database = Path(os.environ.get("BENCH_SHOP_DB", workdir / "shop.sqlite3"))  # a seeded one, kept
        if not database.exists():
            seed(database)
        with receiver() as collector:
            os.environ.update(SHOP_DB=str(database), DJANGO_SETTINGS_MODULE="shop.settings")
            prepare(variant, collector.endpoint)
            sys.path.insert(0, str(SHOP))
            if variant == "contrib":
                contrib()
            from django.core.wsgi import get_wsgi_application

            application = get_wsgi_application()
            path = PATHS[view]
            serve(application, path, 200)  # warm-up: caches, first provider use, exporter import
            cpu, wall = time.process_time(), time.perf_counter()
            with profiled(), GCPauses() as pauses:
                serve(application, path, count)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            shutdown(variant)
            spans = collector.spans()
        result = {"variant": variant, "view": view, "requests": count, "spans_received": spans}
        result.update(cpu_us=round(1e6 * cpu / count, 1), wall_us=round(1e6 * wall / count, 1))
        result.update(pauses.summary(count))
        print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
