"""Per-task cost of Django's tasks framework (``django.tasks``, Django 6.0+), in one process: a trivial
task enqueued N times on Django's ``ImmediateBackend``, which runs it inside ``enqueue()`` (the
enqueue span and the run span, the run's measurements).

``python bench/django_tasks_micro.py VARIANT [N]``; VARIANT is ``plain``, ``otel-launch`` (our
runtime, started with the environment the launcher writes), ``otel-launch-10`` or
``otel-launch-0`` (parentbased_traceidratio 0.1 or 0: every task unsampled); ``BENCH_BEFORE_SRC``
and ``BENCH_PROFILE`` as in django_micro.py. Spans go to an OTLP receiver in another process. It
prints the CPU time a task (all threads); for instructions a task (callgrind), see instructions.py.
"""

from __future__ import annotations

import json
import sys
import time

from _micro import GCPauses, prepare, profiled, receiver, shutdown


def tick(number: int) -> int:
    return number + 1


def main() -> None:
    variant = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    with receiver() as collector:
        prepare(variant, collector.endpoint)
        import django
        from django.conf import settings

        settings.configure(
            TASKS={"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}},
            INSTALLED_APPS=[],
            USE_TZ=True,
            LOGGING_CONFIG=None,  # Django's INFO line a task, with nowhere to go, as in a worker without LOGGING
        )
        django.setup()
        from django.tasks import task

        ticking = task(tick)
        for number in range(200):  # warm-up: caches, first provider use
            ticking.enqueue(number)
        cpu, wall = time.process_time(), time.perf_counter()
        with profiled(), GCPauses() as pauses:
            for number in range(count):
                ticking.enqueue(number)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        shutdown(variant)
        spans = collector.spans()
    result = {"variant": variant, "tasks": count, "spans_received": spans, "cpu_us": round(1e6 * cpu / count, 1)}
    print(json.dumps({**result, "wall_us": round(1e6 * wall / count, 1), **pauses.summary(count)}), flush=True)


if __name__ == "__main__":
    main()
