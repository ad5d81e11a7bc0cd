"""Per-task cost of the Celery worker path, in one process: Celery's real tracer (``build_tracer``,
what a prefork child runs for each message) called N times on a trivial task.

``python bench/celery_micro.py VARIANT [N]``; VARIANT is ``plain``, ``otel-launch`` (our runtime,
started as the launcher starts it), ``otel-launch-nometrics`` (OTEL_METRICS_EXPORTER=none),
``otel-launch-10`` (parentbased_traceidratio 0.1) or ``contrib`` (CeleryInstrumentor, as
``opentelemetry-instrument`` would). Spans go to an OTLP receiver in another process (started
here), so export costs what it costs in a worker. Under callgrind the warm-up is excluded by
running it twice, with N and with more, and dividing the difference::

    valgrind --tool=callgrind .venv/bin/python bench/celery_micro.py otel-launch 200
    valgrind --tool=callgrind .venv/bin/python bench/celery_micro.py otel-launch 1200

instructions a task = (Ir of the second - Ir of the first) / 1000. Without valgrind it prints
microseconds a task.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def environment(variant: str) -> None:
    os.environ.setdefault("OTEL_SERVICE_NAME", "micro")
    os.environ["OTEL_LOGS_EXPORTER"] = "none"
    # Exports by batch size only (512 spans), and no metric export during the run: counts that do
    # not depend on how long the run takes (under callgrind, 50 times longer).
    os.environ.update(OTEL_BSP_SCHEDULE_DELAY="600000", OTEL_METRIC_EXPORT_INTERVAL="600000")
    if variant == "otel-launch-nometrics":
        os.environ["OTEL_METRICS_EXPORTER"] = "none"
    if variant == "otel-launch-10":
        os.environ.update(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.1")
    if variant.startswith("otel-launch"):
        from otel_launch._runtime import start

        start()


def contrib() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    metrics.set_meter_provider(MeterProvider([PeriodicExportingMetricReader(OTLPMetricExporter())]))
    CeleryInstrumentor().instrument()


def measured(tracer, name: str, count: int, hostname: str) -> None:
    for _ in range(count):
        task_id = str(uuid.uuid4())
        request = {
            "id": task_id,
            "task": name,
            "root_id": task_id,
            "parent_id": None,
            "group": None,
            "retries": 0,
            "eta": None,
            "expires": None,
            "delivery_info": {"exchange": "", "routing_key": "bench", "priority": 0, "redelivered": False},
            "hostname": hostname,
            "otel_launch_received": time.time(),  # stamped by the main process: a plain producer
            "args": [],
            "kwargs": {},
            "is_eager": False,
        }
        tracer(task_id, [], {}, request)


def main() -> None:
    variant = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    sys.path.insert(0, HERE)
    from _common import free_port

    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(port)], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        receiver.stdout.readline()  # "ready"
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
        environment(variant)
        import celery.apps.worker  # noqa: F401  (what `celery worker` imports: our worker hooks)
        from celery import Celery

        app = Celery("micro", broker="memory://")
        app.conf.task_ignore_result = True

        @app.task(name="micro.tick")
        def tick() -> None:
            return None

        if variant == "contrib":
            contrib()
        from celery import signals
        from celery.app.trace import build_tracer

        app.finalize()
        signals.worker_init.send(sender=None)
        signals.worker_process_init.send(sender=None)
        tracer = build_tracer(tick.name, tick, app=app, hostname="micro@bench")
        measured(tracer, tick.name, 200, "micro@bench")  # warm-up: caches, first provider use
        started = time.perf_counter()
        measured(tracer, tick.name, count, "micro@bench")
        elapsed = time.perf_counter() - started
        from otel_launch._runtime import _lifecycle

        if variant.startswith("otel-launch"):
            _lifecycle.shutdown()
        else:
            from opentelemetry import trace

            getattr(trace.get_tracer_provider(), "shutdown", lambda: None)()
        print(f"{variant}: {1e6 * elapsed / count:.1f} us a task ({count} tasks)", flush=True)
    finally:
        os.killpg(receiver.pid, 9)
        receiver.wait(10)


RECEIVER = """
import sys, time
from otel_launch._receiver import OTLPReceiver
with OTLPReceiver(grpc_port=int(sys.argv[1]), http_port=None, keep=False):
    print("ready", flush=True)
    time.sleep(600)
"""

if __name__ == "__main__":
    main()
