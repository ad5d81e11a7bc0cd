"""Publish a task inside a span and run it in an in-process worker (memory broker, solo pool):
the publish, the run and the flush of a real Celery worker, without a broker server.

The memory transport sleeps its polling interval (1 s by default) whenever a queue is empty, and
the solo pool's loop notices a stop only between two waits for a message (2 s each): the worker
polls every 10 ms and is stopped by a remote-control shutdown, a message that ends its loop at once."""

from celery import Celery
from celery.contrib.testing.worker import start_worker
from opentelemetry import trace

app = Celery("inproc", broker="memory://", backend="cache+memory://")
app.conf.broker_transport_options = {"polling_interval": 0.01}


@app.task(name="inproc.add")
def add(x, y):
    return x + y


with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
    with trace.get_tracer("target").start_as_current_span("request"):
        result = add.delay(1, 2)
    print(result.get(timeout=20, interval=0.01), flush=True)
    app.control.shutdown(destination=[worker.hostname], msg="stopped by celery_in_process.py")
