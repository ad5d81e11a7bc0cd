"""Publish and run spans, queue time and worker metrics: our own lean path on Celery's signals.

It replaces the handlers of the contrib ``CeleryInstrumentor`` (0.66b1), whose records it
keeps. On the producer side: a PRODUCER span ``apply_async/<task>``, current while the message is
sent, with ``celery.action`` = ``apply_async``, ``messaging.message.id``, ``celery.task_name``
and the message's attributes set by the contrib's ``utils.set_attributes_from_context``, its
trace context injected into the message headers (the contrib's own handlers look the task up in
Celery's registry twice a publish and activate the span through a generator: a fifth of a
publish's cost, sampled or not). On the worker side: a CONSUMER span ``run/<task>`` parented
by the trace context in the message headers, with ``celery.action`` = ``run``, ``celery.state``,
``celery.task_name`` and the request's attributes set by the contrib's own
``utils.set_attributes_from_context``; on failure status ERROR and the exception event (not
for exceptions in ``task.throws``); ``celery.retry.reason`` on retry; the histogram
``flower.task.runtime.seconds`` {task, worker}. One handler per signal, the span attached once,
and measurements that share their attributes make it cheaper; while every receiver of their
signals is connected for any sender (Celery's Django fixup's are), Celery's task tracer calls
``on_prerun`` and ``on_postrun`` without its signal dispatch (``dispatch.py``).

What it adds (names in the README, "What a Celery team gets"):

- ``celery.task.queue_time`` (span attribute and histogram, s): from when the task became due
  (its publish, or its ETA/countdown when later) to the start of its execution. The publish
  time travels in the header ``PUBLISHED``; for a message without it (an uninstrumented
  producer) the worker's main process stamps ``RECEIVED`` when it receives the message, and
  ``celery.task.queue_time.since`` says which clock started (``published``, ``eta``, ``received``).
- ``messaging.process.duration`` (s) and ``celery.task.executions`` by ``celery.state``.
- the current messaging attributes on run spans (``messaging.operation.type`` etc.).
- hooks for ``cost.py`` (a recorded task's CPU time and peak memory growth) and, from the
  header beat sets (``beat.py``), ``celery.beat.entry`` on the run span.

A task whose child is interrupted (a hard time limit's SIGTERM raises SystemExit through the
task) reaches ``task_postrun`` with no state: its span is dropped here, because the worker's
main process records it, as ERROR, with the cause (``killed.py``).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any

from opentelemetry import context, metrics, propagate, trace
from opentelemetry.instrumentation.celery import celery_getter, utils

from otel_launch._runtime.integrations._histograms import BoundHistogram, observed_counts
from otel_launch._runtime.integrations.celery import BEAT_ENTRY, PUBLISHED, cost
from otel_launch._runtime.integrations.django import n_plus_one, transactions

RECEIVED = "otel_launch_received"  # set by the worker's main process when PUBLISHED is missing
SCOPE = "opentelemetry.instrumentation.celery"  # the contrib's scope: dashboards filter on it
_SCHEMA = "https://opentelemetry.io/schemas/1.11.0"

# Semantic-conventions advice for messaging durations; queue time extends it to an hour.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_QUEUE_BUCKETS = (*_DURATION_BUCKETS, 30, 60, 300, 900, 3600)

# task id -> [span, token, start (perf_counter), error.type, queue time, queue, N+1 watch, hostname, system, cost]
_running: dict[str, list[Any]] = {}
_telemetry: list[Any] = [None, None]  # [tracer provider, tracer]
_instruments: list[Any] = [None, None]  # [meter provider, (histograms and counter)]
_attributes: dict[tuple, dict[str, Any]] = {}  # metric attributes, built once per combination
_system: list[str] = []
_CONSUMER = trace.SpanKind.CONSUMER
_PRODUCER = trace.SpanKind.PRODUCER
_publishing: dict[str, tuple[Any, Any]] = {}  # task id -> (publish span, context token) while sent


def _tracer() -> Any:
    """The SDK tracer of the provider of the moment: the one place the worker path follows a
    provider the app sets later (ours hands out tracers that would follow it too, see sdk/parts.py,
    at one more call a span; the Django request path takes its tracer the same way)."""
    provider = trace.get_tracer_provider()
    if _telemetry[0] is not provider:  # first use, or the app set its own provider
        from opentelemetry.instrumentation.celery.version import __version__

        get_tracer = getattr(provider, "get_sdk_tracer", None) or provider.get_tracer
        _telemetry[:] = provider, get_tracer(SCOPE, __version__, _SCHEMA)
    return _telemetry[1]


def instruments() -> tuple[Any, Any, Any, Any]:
    """(flower runtime or None, process duration, queue time, executions) of the current meter provider."""
    provider = metrics.get_meter_provider()
    if _instruments[0] is not provider:
        from opentelemetry.instrumentation.celery.version import __version__

        from otel_launch._core.settings import read_setting

        meter = provider.get_meter(SCOPE, __version__, schema_url=_SCHEMA)
        flower = None
        if read_setting("celery_flower_metric", os.environ):  # for Flower-era dashboards only: a duplicate
            flower = meter.create_histogram(
                "flower.task.runtime.seconds", unit="seconds", description="The time it took to run the task."
            )
        _attributes.clear()  # their bound measurements belong to the old instruments
        _instruments[:] = (
            provider,
            (
                flower,
                meter.create_histogram(
                    "messaging.process.duration",
                    unit="s",
                    description="Duration of task executions, in the pool child that ran them.",
                    explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
                ),
                meter.create_histogram(
                    "celery.task.queue_time",
                    unit="s",
                    description="From when a task was due (published, or its ETA) to the start of its execution.",
                    explicit_bucket_boundaries_advisory=_QUEUE_BUCKETS,
                ),
                meter.create_observable_counter(
                    "celery.task.executions",
                    [observed_counts(provider, _instruments, _executions)],
                    unit="{execution}",
                    description="Task executions, by celery.state.",
                ),
            ),
        )
    return _instruments[1]


# Executions are counted here and observed at export: a count a task is a list increment where a
# synchronous counter's add() costs as much as a histogram measurement (~20 us, most of it the
# SDK hashing the attributes). Each process counts its own: a forked child starts from zero.
_executions: dict[tuple, list[Any]] = {}  # (task, queue, state) -> [attributes, count]


def _forked() -> None:
    _executions.clear()
    _attributes.clear()  # they hold the parent's counts


os.register_at_fork(after_in_child=_forked)


def messaging_system(app: Any) -> str:
    """The broker's transport, as ``messaging.system`` names it (``rabbitmq`` for AMQP)."""
    if not _system:
        try:
            driver = app.connection_for_read().transport.driver_type
        except Exception:
            driver = "unknown"
        _system.append({"amqp": "rabbitmq", "librabbitmq": "rabbitmq", "sqs": "aws_sqs"}.get(driver, driver))
    return _system[0]


def _timestamp(eta: Any) -> float | None:
    if not eta:
        return None
    try:
        moment = eta if isinstance(eta, datetime) else datetime.fromisoformat(str(eta))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def queue_time(headers: Any, started: float) -> tuple[float, str] | None:
    """(seconds, since) for a task that started at ``started`` (epoch seconds), from its headers."""
    due, since = headers.get(PUBLISHED), "published"
    if due is None:
        due, since = headers.get(RECEIVED), "received"
        if due is None:
            return None
    eta = _timestamp(headers.get("eta"))
    if eta is not None and eta > due:
        due, since = eta, "eta"
    return max(0.0, started - float(due)), since


def queue(delivery_info: Any) -> str:
    return (delivery_info or {}).get("routing_key") or ""


class _Collected(dict):
    """Takes what the contrib's ``utils.set_attributes_from_context`` sets on a span, so that the
    request's attributes are exactly the contrib's and reach the span in one call."""

    __slots__ = ()

    def is_recording(self) -> bool:
        return True

    set_attribute = dict.__setitem__


_MISSING: Any = object()
_class_values: dict[type, Any] = {}  # a Context class -> its own values of the keys read, or None


def _readable(request: Any) -> Any:
    """``request`` (Celery's ``Context``) as the run span's attributes read it, in one dict.

    The contrib's ``set_attributes_from_context`` reads 19 keys through ``Context.get``, that is
    ``getattr``: the instance's value, else the class's. The same values, merged once into a
    dict (the class's, then the instance's), are read by dict's own ``get``: 21 Python calls less
    a recorded task. A class whose ``get`` or attributes are not plain values (a subclass with a
    property, ``__getattr__`` or its own ``get``) is read as it is.
    """
    kind = type(request)
    values = _class_values.get(kind, _MISSING)
    if values is _MISSING:
        values = _class_values[kind] = _values_of(kind)
    if values is None:
        return request
    return values | request.__dict__


def _values_of(kind: type) -> dict[str, Any] | None:
    from celery.app.task import Context

    if not issubclass(kind, Context) or kind.get is not Context.get or hasattr(kind, "__getattr__"):
        return None
    values: dict[str, Any] = {}
    for key in (*utils.CELERY_CONTEXT_ATTRIBUTES, transactions.IN_TRANSACTION, BEAT_ENTRY):
        for klass in kind.__mro__:
            if key in vars(klass):
                value = vars(klass)[key]
                if hasattr(type(value), "__get__"):  # a property or a method: getattr() would call it
                    return None
                values[key] = value
                break
    return values


def span_attributes(request: Any, name: str, destination: str, system: str, waited: Any) -> dict[str, Any]:
    """A run span's attributes known at its start: the contrib's (but ``celery.state``) and ours."""
    attributes = _Collected({"celery.action": "run"})
    request = _readable(request)
    utils.set_attributes_from_context(attributes, request)
    attributes["celery.task_name"] = name
    attributes["messaging.operation.type"] = "process"
    attributes["messaging.system"] = system
    attributes["messaging.destination.name"] = destination
    if request.get(transactions.IN_TRANSACTION) is not None:  # sent inside a Django transaction
        attributes[transactions.SENT] = True
    entry = request.get(BEAT_ENTRY)  # sent by beat (beat.py)
    if entry:
        attributes["celery.beat.entry"] = entry
    if waited is not None:
        attributes["celery.task.queue_time"] = waited[0]
        if waited[1] != "published":  # the clock did not start at the publish: say which did
            attributes["celery.task.queue_time.since"] = waited[1]
    return attributes


def record_metrics(
    name: str,
    hostname: str,
    destination: str,
    system: str,
    state: Any,
    error: Any,
    runtime: float,
    queue_time: float | None,
) -> None:
    """The task's measurements, each bound once per combination of attribute values (``_metrics``)."""
    flower_histogram, duration_histogram, queue_histogram, _ = instruments()
    key = (name, hostname, destination, system, state, error)
    shared = _attributes.get(key)
    if shared is None:
        if len(_attributes) > 10_000:  # bounded, whatever the app names its tasks
            _attributes.clear()
        queue_attrs = {"celery.task_name": name, "messaging.destination.name": destination}
        process = {**queue_attrs, "messaging.system": system, "messaging.operation.name": "run"}
        if error:
            process["error.type"] = error
        shared = _attributes[key] = (
            BoundHistogram(flower_histogram, {"task": name, "worker": hostname})
            if flower_histogram is not None
            else None,
            BoundHistogram(duration_histogram, process),
            BoundHistogram(queue_histogram, queue_attrs),
            # [attributes, count], observed at export (observed_counts); kept across a clear()
            _executions.setdefault((name, destination, state), [{**queue_attrs, "celery.state": str(state)}, 0]),
        )
    flower, process_duration, queued, counted = shared
    if flower is not None:
        flower.record(runtime)
    process_duration.record(runtime)
    if queue_time is not None:
        queued.record(queue_time)
    counted[1] += 1


# -- the signal handlers (connected in every worker process; a pool child inherits them) --------


def _message_id(headers: Any, body: Any) -> Any:
    """The task id of a message being published, as the contrib reads it (protocol 2, then 1)."""
    if headers:
        return headers.get("id")
    return body.get("id") if body is not None else None


def on_before_publish(**kwargs: Any) -> None:
    """``before_task_publish``: the publish time for queue time, and the contrib's publish span."""
    headers = kwargs.get("headers")
    task_id = _message_id(headers, kwargs.get("body"))
    inject = bool(headers)  # as the contrib: the headers it was handed, not with our stamp
    if headers is not None:
        headers[PUBLISHED] = time.time()
    if task_id is None:
        return
    name = kwargs.get("sender", "unknown")  # the task's name (Celery sends it as the sender)
    span = _tracer().start_span(f"apply_async/{name}", kind=_PRODUCER)
    if span.is_recording():  # an unsampled publish costs its propagation only
        span.set_attribute("celery.action", "apply_async")
        span.set_attribute("messaging.message.id", task_id)
        span.set_attribute("celery.task_name", name)
        utils.set_attributes_from_context(span, kwargs)
    transactions.check_publish(span, headers, name, task_id)  # sent inside a Django transaction?
    token = context.attach(trace.set_span_in_context(span))
    _publishing[task_id] = span, token
    if inject:
        propagate.inject(headers)


def on_after_publish(headers: Any = None, body: Any = None, **_: Any) -> None:
    task_id = _message_id(headers, body)
    published = _publishing.pop(task_id, None) if task_id is not None else None
    if published is None:
        return
    span, token = published
    context.detach(token)
    span.end()


def on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task is None or task_id is None:
        return
    request = task.request
    now = time.time()
    parent = propagate.extract(request, getter=celery_getter)
    span = _tracer().start_span(f"run/{task.name}", context=parent, kind=_CONSUMER, start_time=int(now * 1e9))
    destination = (request.delivery_info or {}).get("routing_key") or ""  # queue(), one call less
    waited = queue_time(vars(request), now)  # its headers as they came: dict reads, not Context.get calls
    system = _system[0] if _system else messaging_system(task.app)
    watch = used = None
    if span.is_recording():  # an unsampled task costs propagation and its measurements only
        span.set_attributes(span_attributes(request, task.name, destination, system, waited))
        token = context.attach(trace.set_span_in_context(span, parent))
        # Statements repeated on Django's connections mark a recorded run span.
        watch = n_plus_one.begin(span)
        used = cost.start(True)  # cost.py: CPU time and peak memory growth
    else:
        token = context.attach(trace.set_span_in_context(span, parent))
    # What postrun needs, read here once (each read of task.request goes through Celery's stack).
    hostname = request.hostname
    _running[task_id] = [span, token, time.perf_counter(), None, waited, destination, watch, hostname, system, used]


def on_postrun(task_id: str | None = None, task: Any = None, state: Any = None, **_: Any) -> None:
    run = _running.pop(task_id, None) if task_id is not None else None
    if run is None:
        return
    span, token, started, error, waited, destination, watch, hostname, system, used = run
    runtime = time.perf_counter() - started
    if watch is not None:
        n_plus_one.end(watch)
    context.detach(token)
    if state is None:  # interrupted: the main process records it (killed.py)
        return
    if span.is_recording():
        attributes = cost.finish(task.name, used) if used is not None else {}  # cost.py
        attributes["celery.state"] = state
        span.set_attributes(attributes)
    span.end()
    record_metrics(task.name, hostname, destination, system, state, error, runtime, waited[0] if waited else None)


def on_failure(task_id: str | None = None, exception: Any = None, einfo: Any = None, sender: Any = None, **_: Any):
    run = _running.get(task_id) if task_id is not None else None
    if run is None:  # not run here: in the main process, a killed child's task (killed.py)
        return
    from opentelemetry.trace import Status, StatusCode

    failure = getattr(einfo, "exception", None) or exception
    failure = getattr(failure, "exc", None) or failure  # billiard's ExceptionWithTraceback
    throws = getattr(sender, "throws", ())
    if failure is None or (throws and isinstance(failure, throws)):
        return
    span = run[0]
    run[3] = type(failure).__qualname__
    if span.is_recording():
        span.set_attribute("error.type", run[3])
        span.record_exception(failure)
        span.set_status(Status(StatusCode.ERROR, str(failure)))


def on_retry(request: Any = None, reason: Any = None, **_: Any) -> None:
    run = _running.get(getattr(request, "id", None))
    if run is not None and reason and run[0].is_recording():
        run[0].set_attribute("celery.retry.reason", str(reason))


def stamp_receipt(request: Any = None, **_: Any) -> None:
    """Main process, ``task_received``: the queue-time clock for messages without a publish time."""
    headers = getattr(request, "request_dict", None)
    if headers is not None and PUBLISHED not in headers:
        headers[RECEIVED] = time.time()


def main_process_gauges() -> None:
    """Tasks executing now, prefetched (received, waiting for a pool slot) and waiting for their ETA,
    observed from the worker's own bookkeeping at export: no cost per task."""
    from celery.worker import state
    from opentelemetry import metrics
    from opentelemetry.metrics import Observation

    pid = os.getpid()

    def observe(count: Any) -> Any:
        def callback(_: Any) -> list[Any]:
            return [Observation(count())] if os.getpid() == pid else []  # not from pool children

        return [callback]

    meter = metrics.get_meter(SCOPE)
    meter.create_observable_up_down_counter(
        "celery.worker.tasks.executing",
        observe(lambda: len(state.active_requests)),
        unit="{task}",
        description="Tasks executing now in this worker's pool.",
    )
    meter.create_observable_up_down_counter(
        "celery.worker.tasks.prefetched",
        observe(lambda: sum(1 for r in list(state.reserved_requests) if r not in state.active_requests)),
        unit="{task}",
        description="Tasks this worker received that wait for a free pool slot.",
    )
    if not hasattr(state, "scheduled_requests"):  # Celery before 5.4 keeps no such set
        return
    meter.create_observable_up_down_counter(
        "celery.worker.tasks.scheduled",
        observe(lambda: len(state.scheduled_requests)),
        unit="{task}",
        description="Tasks this worker holds until their ETA or countdown.",
    )
