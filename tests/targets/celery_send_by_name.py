"""Send a task this process knows only by name (as a service calling another's worker does)."""

from celery import Celery
from opentelemetry import trace

app = Celery("caller", broker="memory://")
app.send_task("billing.tasks.charge", args=(42,))
with trace.get_tracer("caller").start_as_current_span("after-the-publish"):
    pass
