"""Tasks whose pool child was killed under them: the worker's main process records their run span.

A child killed outright (SIGKILL, the OOM killer) cannot flush; one stopped by a hard time
limit gets SIGTERM, which raises SystemExit through the task (its own span is dropped, see
``worker.py``). Either way the task would be invisible, or look fine. Billiard reports both
to the main process, which still holds the task's request (headers with the trace context,
the time its child accepted it): ``Request.on_timeout(soft=False)`` for a hard time limit,
``Request.on_failure`` with ``WorkerLostError`` (or the child's SystemExit) for a lost child.
A running task revoked with ``terminate=True`` is the same loss, asked for: the main process
signals its child from ``Request.terminate``, so the span is recorded there, with ``celery.state``
``REVOKED`` and ``error.type`` ``TaskRevokedError``. There the run span is recorded, ERROR,
with ``error.type`` and the exception event, in the task's trace, and counted in the worker
metrics; once per task, whichever of these hooks comes first.
"""

from __future__ import annotations

import time
from typing import Any

from otel_launch._runtime.integrations.celery import worker


def install(request_class: Any) -> None:
    """Wrap the hooks of Celery's worker Request through which billiard reports the loss, and the
    one through which a revoke terminates a running task."""
    on_timeout, on_failure, terminate = request_class.on_timeout, request_class.on_failure, request_class.terminate

    def on_timeout_recording(self: Any, soft: bool, timeout: Any) -> Any:
        if not soft:
            from billiard.exceptions import TimeLimitExceeded
            from celery.worker import state

            if not state.should_terminate:  # a cold shutdown is not the task's failure
                _safely(_record, self, TimeLimitExceeded(timeout))
        return on_timeout(self, soft, timeout)

    def on_failure_recording(self: Any, exc_info: Any, *args: Any, **kwargs: Any) -> Any:
        _safely(_record_failure, self, exc_info)
        return on_failure(self, exc_info, *args, **kwargs)

    def terminate_recording(self: Any, pool: Any, signal: Any = None) -> Any:
        running = self.time_start and not getattr(self, "_already_revoked", False)
        result = terminate(self, pool, signal)  # a pool that cannot terminate (threads, solo) raises: no record
        if running:  # its child is killed now
            _safely(_record_terminated, self, signal)
        return result

    request_class.on_timeout = on_timeout_recording
    request_class.on_failure = on_failure_recording
    request_class.terminate = terminate_recording


def _kills(signal: Any) -> bool:
    """Whether a revoke's signal ends the child without the task's own code running on (SIGUSR1,
    Celery's soft time limit signal, raises in the task instead, which records its own run span)."""
    from celery.platforms import signals

    return signals.signum(signal or "TERM") in (signals.signum("TERM"), signals.signum("KILL"), signals.signum("QUIT"))


def _record_terminated(request: Any, signal: Any) -> None:
    from celery.exceptions import TaskRevokedError
    from celery.platforms import signals

    if not _kills(signal):  # a signal the task handles: it records its own run span
        return
    name = signals.signum(signal or "TERM")
    _record(request, TaskRevokedError(f"terminated by signal {name}"), state="REVOKED")


def _record_failure(request: Any, exc_info: Any) -> None:
    from billiard.exceptions import WorkerLostError

    exc = getattr(exc_info, "exception", None)
    exc = getattr(exc, "exc", None) or exc  # billiard's ExceptionWithTraceback
    if isinstance(exc, WorkerLostError):
        _record(request, exc)
    elif isinstance(exc, (SystemExit, KeyboardInterrupt)) and not (
        getattr(request, "_already_cancelled", False) or getattr(request, "_already_revoked", False)
    ):
        _record(request, WorkerLostError(f"Worker exited prematurely ({type(exc).__name__}: {exc})"))


def _safely(record: Any, *args: Any) -> None:
    """These run in the worker's main process, before Celery's own failure handling (ack, result,
    retry): telemetry that raises must never keep that from running."""
    try:
        record(*args)
    except Exception as exc:
        from otel_launch._runtime._log import warn

        warn(f"could not record a lost task's span ({type(exc).__name__}: {exc})")


def _record(request: Any, exc: BaseException, state: str = "FAILURE") -> None:
    if getattr(request, "_otel_launch_recorded", False):  # a timeout is then also a failure
        return
    request._otel_launch_recorded = True
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Status, StatusCode

    headers = request.request_dict
    started = request.time_start or time.time()  # set when a child accepted the task
    now = time.time()
    delivery_info = request.delivery_info
    system = worker.messaging_system(request.task.app)
    waited = worker.queue_time(headers, started)
    attributes = worker.span_attributes(request._context, request.name, worker.queue(delivery_info), system, waited)
    error = type(exc).__qualname__
    attributes.update({"celery.state": state, "error.type": error})
    span = worker._tracer().start_span(
        f"run/{request.name}",
        context=propagate.extract(headers),
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
        start_time=int(started * 1e9),
    )
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{error}: {exc}"))
    span.end(int(now * 1e9))
    worker.record_metrics(
        request.name,
        request.hostname,
        attributes["messaging.destination.name"],
        system,
        state,
        error,
        runtime=max(0.0, now - started),
        queue_time=waited[0] if waited else None,
    )
