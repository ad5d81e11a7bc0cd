"""Tasks run through Celery's own task tracer (``build_tracer``, what a pool child runs for each
message, and ``apply()`` for an eager task) with otel-launch's Celery integration, its
``task_prerun``/``task_postrun`` handlers reached the way ``sys.argv[1]`` says: ``direct``
(celery/dispatch.py, as a worker has them) or ``signals`` (Celery's ``Signal.send``, dispatch.py
taken off). Prints, as JSON, what the SDK recorded (spans and metrics, times and durations
masked) and how often Celery's dispatch looked up the receivers of the two signals.

Three phases: ours the signals' only receivers; then with receivers of the app's connected too
(bound methods, weakly, for any sender, as Celery's Django fixup connects its own), which must see
every task either way; then with one more for a specific task (which Celery's dispatch filters).
"""

import json
import sys

from celery import Celery, signals
from celery.app.trace import build_tracer
from celery.exceptions import Ignore, Reject
from celery.utils.dispatch.signal import Signal
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

spans = InMemorySpanExporter()
tracing = TracerProvider(sampler=ParentBased(ALWAYS_ON))
tracing.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(tracing)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider([reader]))

import celery.apps.worker  # noqa: E402, F401  (loaded as `celery worker` loads it)

from otel_launch._runtime.integrations import celery as integration  # noqa: E402
from otel_launch._runtime.integrations.celery import dispatch  # noqa: E402

integration.on_worker_import(celery.apps.worker)  # what the launcher's import hook runs
if sys.argv[1] == "signals":
    dispatch.uninstall()

app = Celery("sidebyside", broker="memory://")
app.conf.task_ignore_result = True


@app.task(name="side.ok")
def ok():
    return 1


@app.task(name="side.fails")
def fails():
    raise ValueError("no good")


@app.task(name="side.expected", throws=(KeyError,))
def expected():
    raise KeyError("expected")


@app.task(name="side.retries", bind=True, max_retries=3)
def retries(self):
    raise self.retry(countdown=60, exc=RuntimeError("later"))


@app.task(name="side.ignored")
def ignored():
    raise Ignore()


@app.task(name="side.rejected")
def rejected():
    raise Reject("no", requeue=False)


@app.task(name="side.nested")
def nested():
    ok.delay()  # a publish inside the run span


TASK_NAMES = ("side.ok", "side.fails", "side.expected", "side.retries", "side.ignored", "side.rejected", "side.nested")
SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-00"
TRACES = {SAMPLED.split("-")[1]: "sampled", UNSAMPLED.split("-")[1]: "unsampled"}
looked_up = {"task_prerun": 0, "task_postrun": 0}
_live_receivers = Signal._live_receivers


def counting(self, sender):
    if self.name in looked_up:
        looked_up[self.name] += 1
    return _live_receivers(self, sender)


Signal._live_receivers = counting


def run_all(phase: str) -> None:
    app.finalize()
    for task_name in TASK_NAMES:
        task = app.tasks[task_name]
        tracer = build_tracer(task.name, task, app=app, hostname="side@host")
        for flavour, parent in (("sampled", SAMPLED), ("unsampled", UNSAMPLED)):
            task_id = f"{phase}-{task_name}-{flavour}"
            request = {
                "id": task_id,
                "task": task_name,
                "root_id": task_id,
                "parent_id": None,
                "group": None,
                "retries": 0,
                "eta": None,
                "expires": None,
                "delivery_info": {"exchange": "", "routing_key": "side", "priority": 0, "redelivered": False},
                "hostname": "side@host",
                "traceparent": parent,
                "otel_launch_published": 1.0,
                "args": [],
                "kwargs": {},
                "is_eager": False,
            }
            tracer(task_id, [], {}, request)
    app.tasks["side.ok"].apply(task_id=f"{phase}-eager-ok")  # eager: apply() builds an eager tracer
    app.tasks["side.fails"].apply(task_id=f"{phase}-eager-fails")


# Times, and the id of a message published inside a task (a new uuid each run).
MASKED = {
    "messaging.message.id",
    "celery.task.queue_time",
    "celery.task.cpu_time",
    "celery.task.memory.peak_growth",
    "exception.stacktrace",
}


def masked(attributes) -> dict:
    return {k: "<masked>" if k in MASKED else (list(v) if isinstance(v, tuple) else v) for k, v in attributes.items()}


def recorded_spans() -> list:
    finished = spans.get_finished_spans()
    names = {s.context.span_id: s.name for s in finished}
    out = []
    for s in finished:
        parent = s.parent.span_id if s.parent else None
        out.append(
            {
                "name": s.name,
                "kind": s.kind.name,
                "scope": s.instrumentation_scope.name,
                "trace": TRACES.get(format(s.context.trace_id, "032x"), "a trace of its own"),
                "parent": names.get(parent, format(parent, "016x") if parent else None),
                "status": [s.status.status_code.name, s.status.description],
                "attributes": masked(s.attributes),
                "events": [[e.name, masked(e.attributes)] for e in s.events],
            }
        )
    return sorted(out, key=lambda s: json.dumps(s, sort_keys=True))


def recorded_metrics() -> list:
    out = []
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    count = getattr(point, "count", None)
                    value = count if count is not None else point.value
                    out.append([scope_metrics.scope.name, metric.name, masked(point.attributes), value])
    return sorted(out, key=lambda m: json.dumps(m, sort_keys=True))


seen_by_app: list[str] = []


class AppReceivers:
    """Connected weakly by a bound method, as Celery's Django fixup connects its own."""

    def prerun(self, sender=None, task_id=None, **_):
        seen_by_app.append(f"prerun {task_id} current={trace.get_current_span().get_span_context().is_valid}")

    def postrun(self, sender=None, task_id=None, state=None, **_):
        seen_by_app.append(f"postrun {task_id} {state}")


result = {}
run_all("alone")
result["alone"] = {"looked_up": dict(looked_up)}
looked_up.update(task_prerun=0, task_postrun=0)
receivers = AppReceivers()
signals.task_prerun.connect(receivers.prerun)
signals.task_postrun.connect(receivers.postrun)
run_all("beside")
result["beside"] = {"looked_up": dict(looked_up), "seen_by_app": list(seen_by_app)}
looked_up.update(task_prerun=0, task_postrun=0)
seen_by_app.clear()
seen_for_one: list[str] = []


def for_one_task(sender=None, task_id=None, **_):
    seen_for_one.append(task_id)


signals.task_prerun.connect(for_one_task, sender=app.tasks["side.ok"], weak=False)
run_all("for-one")
result["for_one"] = {"looked_up": dict(looked_up), "seen_by_app": seen_by_app, "seen_for_one": seen_for_one}
tracing.force_flush()
result["spans"] = recorded_spans()
result["metrics"] = recorded_metrics()
print(json.dumps(result, sort_keys=True))
