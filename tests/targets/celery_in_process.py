"""Publish a task inside a span and run it in an in-process worker (memory broker, solo pool):
the publish, the run and the flush of a real Celery worker, without a broker server."""

from celery import Celery
from celery.contrib.testing.worker import start_worker
from opentelemetry import trace

app = Celery("inproc", broker="memory://", backend="cache+memory://")


@app.task(name="inproc.add")
def add(x, y):
    return x + y


with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
    with trace.get_tracer("target").start_as_current_span("request"):
        result = add.delay(1, 2)
    print(result.get(timeout=20), flush=True)
