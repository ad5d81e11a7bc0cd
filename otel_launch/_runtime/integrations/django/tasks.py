"""Django's own tasks (``django.tasks``, Django 6.0+): enqueue and run spans in one trace, queue time, metrics.

What a Celery task gets (``celery/worker.py``), for the tasks framework's backends: a PRODUCER
span ``enqueue <task>`` current while ``Task.enqueue()`` (or ``aenqueue()``) runs, and a CONSUMER
span ``run <task>`` from the backend's ``task_started`` signal to its ``task_finished``, current
while the task runs (its queries are its children), with the task's outcome as its status: ERROR,
``error.type`` (the exception's class path) and the exception event when the task failed.
Both carry ``messaging.message.id`` (the result id), ``messaging.destination.name`` (the queue),
``messaging.system`` = ``django_tasks``, ``django.task.name`` (the function's dotted path) and
``django.task.backend`` (the alias in ``TASKS``); the run span also ``django.task.status`` and
``django.task.queue_time``. Measurements as for Celery tasks: ``messaging.process.duration``,
``django.task.queue_time`` and ``django.task.executions`` (names in docs/django-celery.md).

Where the run happens decides how the enqueue's context reaches it:

- ``ImmediateBackend`` runs the task inside ``enqueue()``: the enqueue span is current, and the
  run span is its child. ``DummyBackend`` stores the task and never runs it: the enqueue span only.
- ``django_tasks_db``'s ``DatabaseBackend`` (the ``django-tasks-db`` package; ``django-tasks``
  shipped it before 0.12) stores a row that its ``db_worker`` command runs in another process.
  The trace context travels in that row: in its ``args_kwargs`` JSON, beside the ``args`` and
  ``kwargs`` the backend reads back, under a key of ours (``otel_launch``), written by a
  ``pre_save`` receiver of the row's model when the row is created. The task's arguments, and so
  its semantics, are unchanged, and no table or migration is added.

Queue time is read from the task result, as the backend records it: from ``enqueued_at`` (the
moment the task was stored: the web process's clock, as a Celery publish time) or its
``run_after`` when later, to ``started_at`` (the worker's clock). Nothing runs per request: the
patches and receivers act only when a task is enqueued or run.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from datetime import datetime
from types import ModuleType
from typing import Any

from opentelemetry import context, metrics, propagate, trace

from otel_launch._runtime.integrations._histograms import BoundHistogram, observed_counts
from otel_launch._runtime.integrations.django import n_plus_one

SCOPE = "otel_launch.django.tasks"
SYSTEM = "django_tasks"  # messaging.system: the tasks framework, whatever its backend stores tasks in
CARRIER_KEY = "otel_launch"  # the trace context's key in a stored task's args_kwargs

# Semantic-conventions advice for messaging durations; queue time extends it to an hour (as Celery's).
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_QUEUE_BUCKETS = (*_DURATION_BUCKETS, 30, 60, 300, 900, 3600)
_PRODUCER = trace.SpanKind.PRODUCER
_CONSUMER = trace.SpanKind.CONSUMER

_telemetry: list[Any] = [None, None]  # [tracer provider, tracer]
_instruments: list[Any] = [None, None]  # [meter provider, (duration, queue time)]
_attributes: dict[tuple, tuple] = {}  # bound measurements, once per combination of attribute values
_executions: dict[tuple, list[Any]] = {}  # (task, queue, status) -> [attributes, count], observed at export
# result id -> [span, token, start (perf_counter), queue time, name, queue, N+1 watch]
_running: dict[str, list[Any]] = {}


def _forked() -> None:
    _executions.clear()
    _attributes.clear()  # they hold the parent's counts
    _running.clear()


os.register_at_fork(after_in_child=_forked)


def on_import(tasks: ModuleType) -> None:
    """``django.tasks`` is imported: enqueue spans around ``Task.enqueue``, run spans on its signals."""
    from django.tasks import signals
    from django.tasks.base import Task

    # Everything needed is read before anything is patched: a Django without one of them gets the
    # guard's one warning line and no half of the integration.
    started, finished = signals.task_started, signals.task_finished
    originals = {name: getattr(Task, name) for name in ("enqueue", "aenqueue")}
    for name, wrap in (("enqueue", _traced_enqueue), ("aenqueue", _traced_aenqueue)):
        original = originals[name]
        if not getattr(original, "_otel_launch", False):
            wrapped = wrap(original)
            wrapped._otel_launch = True  # type: ignore[attr-defined]
            setattr(Task, name, wrapped)
    connect = {"weak": False}
    started.connect(on_started, dispatch_uid="otel-launch-task-started", **connect)
    finished.connect(on_finished, dispatch_uid="otel-launch-task-finished", **connect)


def on_db_models_import(models: ModuleType) -> None:
    """``django_tasks_db.models`` is imported: each task row created carries the trace context.

    Only beside ``django.tasks`` (which that module imports first on Django 6): on an older Django
    it serves the ``django-tasks`` backport, whose tasks get no spans here."""
    if "django.tasks" not in sys.modules:
        return
    from django.db.models.signals import pre_save

    pre_save.connect(carry_context, sender=models.DBTaskResult, weak=False, dispatch_uid="otel-launch-task-row")


# -- enqueue ---------------------------------------------------------------------------------


def _tracer() -> Any:
    """The tracer of the provider of the moment (an app may set its own after ours)."""
    provider = trace.get_tracer_provider()
    if _telemetry[0] is not provider:
        from otel_launch._version import __version__

        get_tracer = getattr(provider, "get_sdk_tracer", None) or provider.get_tracer
        _telemetry[:] = provider, get_tracer(SCOPE, __version__)
    return _telemetry[1]


def _begin_enqueue(task: Any) -> tuple[Any, Any]:
    name = task.module_path
    span = _tracer().start_span(f"enqueue {name}", kind=_PRODUCER)
    if span.is_recording():
        span.set_attributes(
            {
                "messaging.system": SYSTEM,
                "messaging.operation.type": "send",
                "messaging.operation.name": "enqueue",
                "messaging.destination.name": task.queue_name,
                "django.task.name": name,
                "django.task.backend": task.backend,
            }
        )
    return span, context.attach(trace.set_span_in_context(span))


def _end_enqueue(span: Any, result: Any, failure: BaseException | None) -> None:
    if span.is_recording():
        if failure is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", _class_path(type(failure)))
            span.record_exception(failure)
            span.set_status(Status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}"))
        else:
            result_id = getattr(result, "id", None)
            if result_id is not None:
                span.set_attribute("messaging.message.id", str(result_id))
    span.end()


def _traced_enqueue(enqueue: Any) -> Any:
    @functools.wraps(enqueue)
    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            span, token = _begin_enqueue(self)
        except Exception as exc:  # no span: the task is enqueued all the same
            _report(exc)
            return enqueue(self, *args, **kwargs)
        try:
            result = enqueue(self, *args, **kwargs)
        except BaseException as exc:
            context.detach(token)  # first, and whatever the span does: the app's context is its own again
            _safely(_end_enqueue, span, None, exc)
            raise
        context.detach(token)
        _safely(_end_enqueue, span, result, None)
        return result

    return traced


def _traced_aenqueue(aenqueue: Any) -> Any:
    @functools.wraps(aenqueue)
    async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            span, token = _begin_enqueue(self)
        except Exception as exc:
            _report(exc)
            return await aenqueue(self, *args, **kwargs)
        try:
            result = await aenqueue(self, *args, **kwargs)
        except BaseException as exc:
            context.detach(token)  # first, and whatever the span does: the app's context is its own again
            _safely(_end_enqueue, span, None, exc)
            raise
        context.detach(token)
        _safely(_end_enqueue, span, result, None)
        return result

    return traced


def _safely(step: Any, *args: Any) -> None:
    """Telemetry never fails an enqueue, a row's save or a task's run: a step that raises is
    reported (one warning line per process) and skipped."""
    try:
        step(*args)
    except Exception as exc:
        _report(exc)


def _report(exc: Exception) -> None:
    if not _failed:
        _failed.append(True)
        from otel_launch._runtime._log import warn

        warn(f"django.tasks telemetry failed, the task is unaffected ({type(exc).__name__}: {exc})")


_failed: list[bool] = []  # non-empty once a failure was reported


def carry_context(instance: Any = None, **_: Any) -> None:
    """``pre_save`` of a database backend's task row: the current trace context into its stored
    ``args_kwargs``, when the row is created (not when the worker claims or finishes it)."""
    _safely(_carry_context, instance)


def _carry_context(instance: Any) -> None:
    if instance is None or not instance._state.adding:
        return
    stored = instance.args_kwargs
    if not isinstance(stored, dict) or CARRIER_KEY in stored:
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if carrier:  # nothing current (a row made outside any span): the row stays as it was
        instance.args_kwargs = {**stored, CARRIER_KEY: carrier}


def stored_context(task_result: Any) -> dict[str, str] | None:
    """The trace context a database backend's row carries (see :func:`carry_context`), if any."""
    row = getattr(task_result, "db_result", None)
    stored = getattr(row, "args_kwargs", None)
    carrier = stored.get(CARRIER_KEY) if isinstance(stored, dict) else None
    return carrier if isinstance(carrier, dict) else None


# -- run -------------------------------------------------------------------------------------


def queue_time(task_result: Any) -> tuple[float, str] | None:
    """(seconds, since) from when the task was due (stored, or its ``run_after`` when later) to its start."""
    due, since = task_result.enqueued_at, "enqueued"
    if due is None:
        return None
    run_after = getattr(task_result.task, "run_after", None)
    started = task_result.started_at
    try:
        if started is None:
            started = datetime.now(due.tzinfo)
        if run_after is not None and run_after > due:
            due, since = run_after, "run_after"
        return max(0.0, (started - due).total_seconds()), since
    except TypeError:  # an aware time beside a naive one (USE_TZ changed between enqueue and run)
        return None


def on_started(sender: Any = None, task_result: Any = None, **_: Any) -> None:
    """``task_started``: the run span, current until ``task_finished``."""
    _safely(_start_run, task_result)


def _start_run(task_result: Any) -> None:
    if task_result is None or task_result.id in _running:
        return
    now = time.time()
    task = task_result.task
    carrier = stored_context(task_result)
    # From another process: the context the row carries; in the enqueuing process: the current one.
    parent = propagate.extract(carrier) if carrier is not None else None
    name = task.module_path
    span = _tracer().start_span(f"run {name}", context=parent, kind=_CONSUMER, start_time=int(now * 1e9))
    waited = queue_time(task_result)
    recording = span.is_recording()
    if recording:
        attributes = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "run",
            "messaging.destination.name": task.queue_name,
            "messaging.message.id": str(task_result.id),
            "django.task.name": name,
            "django.task.backend": task_result.backend,
        }
        if waited is not None:
            attributes["django.task.queue_time"] = waited[0]
            if waited[1] != "enqueued":
                attributes["django.task.queue_time.since"] = waited[1]
        span.set_attributes(attributes)
    token = context.attach(trace.set_span_in_context(span, parent))
    watch = n_plus_one.begin(span) if recording else None
    _running[task_result.id] = [span, token, time.perf_counter(), waited, name, task.queue_name, watch]


def on_finished(sender: Any = None, task_result: Any = None, **_: Any) -> None:
    """``task_finished``: the run span's status from the task's outcome, then the measurements."""
    _safely(_finish_run, task_result)


def _finish_run(task_result: Any) -> None:
    run = _running.pop(task_result.id, None) if task_result is not None else None
    if run is None:
        return
    try:
        _end_run(task_result, run)
    finally:
        context.detach(run[1])  # whatever the span and the measurements do: the task's context ends


def _end_run(task_result: Any, run: list[Any]) -> None:
    span, _token, started, waited, name, queue, watch = run
    runtime = time.perf_counter() - started
    if watch is not None:
        n_plus_one.end(watch)
    status = str(task_result.status)
    error = None
    if status == "FAILED":
        errors = task_result.errors
        error = (errors[-1].exception_class_path if errors else None) or "_OTHER"
    if span.is_recording():
        span.set_attribute("django.task.status", status)
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", error)
            # Both backends send task_finished inside the handler of the task's exception.
            failure = sys.exc_info()[1]
            if failure is not None:
                span.record_exception(failure)
                span.set_status(Status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}"))
            else:
                span.set_status(Status(StatusCode.ERROR, error))
    span.end()
    record_metrics(name, queue, status, error, runtime, waited[0] if waited else None)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# -- metrics ---------------------------------------------------------------------------------


def instruments() -> tuple[Any, Any]:
    """(process duration, queue time) of the current meter provider; executions are observed."""
    provider = metrics.get_meter_provider()
    if _instruments[0] is not provider:
        from otel_launch._version import __version__

        meter = provider.get_meter(SCOPE, __version__)
        _attributes.clear()  # their bound measurements belong to the old instruments
        meter.create_observable_counter(
            "django.task.executions",
            [observed_counts(provider, _instruments, _executions)],
            unit="{execution}",
            description="django.tasks task executions, by django.task.status.",
        )
        _instruments[:] = (
            provider,
            (
                meter.create_histogram(
                    "messaging.process.duration",
                    unit="s",
                    description="Duration of task executions, in the process that ran them.",
                    explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
                ),
                meter.create_histogram(
                    "django.task.queue_time",
                    unit="s",
                    description="From when a django.tasks task was due (enqueued, or its run_after) to its start.",
                    explicit_bucket_boundaries_advisory=_QUEUE_BUCKETS,
                ),
            ),
        )
    return _instruments[1]


def record_metrics(name: str, queue: str, status: str, error: str | None, runtime: float, waited: float | None) -> None:
    """One run's measurements, each bound once per combination of attribute values."""
    duration_histogram, queue_histogram = instruments()
    key = (name, queue, status, error)
    bound = _attributes.get(key)
    if bound is None:
        if len(_attributes) > 10_000:  # bounded, whatever the app names its tasks
            _attributes.clear()
        by_task = {"django.task.name": name, "messaging.destination.name": queue}
        process = {**by_task, "messaging.system": SYSTEM, "messaging.operation.name": "run"}
        if error:
            process["error.type"] = error
        bound = _attributes[key] = (
            BoundHistogram(duration_histogram, process),
            BoundHistogram(queue_histogram, by_task),
            _executions.setdefault((name, queue, status), [{**by_task, "django.task.status": status}, 0]),
        )
    process_duration, queued, counted = bound
    process_duration.record(runtime)
    if waited is not None:
        queued.record(waited)
    counted[1] += 1
