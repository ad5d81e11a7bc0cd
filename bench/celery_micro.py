"""Per-task cost of the Celery worker path, in one process: Celery's real tracer (``build_tracer``,
what a prefork child runs for each message) called N times on a trivial task.

``python bench/celery_micro.py VARIANT [N]``; VARIANT is ``plain``, ``otel-launch`` (our runtime,
started with the environment the launcher writes), ``otel-launch-nometrics``
(OTEL_METRICS_EXPORTER=none), ``otel-launch-10`` (parentbased_traceidratio 0.1),
``otel-launch-0`` (the same sampler at 0: every task unsampled) or ``contrib``
(CeleryInstrumentor, as ``opentelemetry-instrument`` would); any of them suffixed ``+fixup``
(``plain+fixup``, ``otel-launch-0+fixup``) with receivers of ``task_prerun`` and ``task_postrun``
connected as Celery's Django fixup connects its own in every Django project's worker (bound
methods, weakly, for any sender; their bodies only read what the fixup's read before closing
connections, as there are none here); ``BENCH_BEFORE_SRC`` and
``BENCH_PROFILE`` as in django_micro.py. Spans go to an OTLP receiver in another process, so
export costs what it costs in a worker. It prints the CPU time a task (all threads); for
instructions a task (callgrind), see instructions.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

from _micro import GCPauses, prepare, profiled, receiver, shutdown


def environment(variant: str, endpoint: str) -> None:
    prepare(variant, endpoint)
    if variant == "otel-launch-nometrics":  # read when the meter provider is built, on first use
        os.environ["OTEL_METRICS_EXPORTER"] = "none"


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


class FixupReceivers:
    """``DjangoWorkerFixup.on_task_prerun``/``on_task_postrun`` without the connections to close."""

    def on_task_prerun(self, sender, **kwargs) -> None:
        getattr(sender.request, "is_eager", False)

    def on_task_postrun(self, sender, **kwargs) -> None:
        getattr(sender.request, "is_eager", False)


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
    variant, _, fixup = sys.argv[1].partition("+")
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    with receiver() as collector:
        environment(variant, collector.endpoint)
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

        fixup_receivers = FixupReceivers()  # kept alive: weakly connected, as the fixup's
        if fixup == "fixup":
            signals.task_prerun.connect(fixup_receivers.on_task_prerun)
            signals.task_postrun.connect(fixup_receivers.on_task_postrun)
        from celery.app.trace import build_tracer

        app.finalize()
        signals.worker_init.send(sender=None)
        signals.worker_process_init.send(sender=None)
        task = app.tasks[tick.name]  # the task itself, as a worker's pool child has it (``tick`` is a proxy)
        tracer = build_tracer(task.name, task, app=app, hostname="micro@bench")
        measured(tracer, tick.name, 200, "micro@bench")  # warm-up: caches, first provider use
        cpu, wall = time.process_time(), time.perf_counter()
        with profiled(), GCPauses() as pauses:
            measured(tracer, tick.name, count, "micro@bench")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        shutdown(variant)
        spans = collector.spans()
    result = {"variant": sys.argv[1], "tasks": count, "spans_received": spans, "cpu_us": round(1e6 * cpu / count, 1)}
    print(json.dumps({**result, "wall_us": round(1e6 * wall / count, 1), **pauses.summary(count)}), flush=True)


if __name__ == "__main__":
    main()
