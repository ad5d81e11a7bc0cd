"""Work handed to a thread runs in the trace context it was handed over in.

A view or task that runs queries in a ``concurrent.futures.ThreadPoolExecutor`` (as
django-health-check does), or starts a ``threading.Thread``, would otherwise make a root trace
of each piece of work: a new thread starts with an empty context. This carries the
OpenTelemetry context, as the contrib's ``opentelemetry-instrumentation-threading`` does:

- ``Thread.start()`` takes the starting thread's context, and the thread's ``run()`` (the
  class's, or a subclass's own, ``Timer`` included) runs in it;
- ``ThreadPoolExecutor.submit()`` takes the submitting thread's context, and the submitted
  function runs in it (so does ``loop.run_in_executor``, which submits). The pool's worker
  threads, started inside ``submit()``, keep no context of their own: between work items a
  worker is outside any trace (the contrib leaves the first submitter's there for its life).

Only the OpenTelemetry context travels (the span, baggage, suppression), never the app's other
context variables, and never into OpenTelemetry's own threads (export, metric reader) or ours.
What it costs, against the contrib (which wraps with wrapt and always attaches), is in the
README ("Django and Celery: what you get"): when no context is current (no span, no baggage) a
start or submit reads one context variable and changes nothing; a process that never imported
the OpenTelemetry API reads ``sys.modules`` only.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

_state: dict[str, Any] = {}  # the thread-local that start() and submit() share


def _context_to_carry() -> Any:
    """The current OpenTelemetry context, or None when there is nothing to carry."""
    current = sys.modules["opentelemetry.context"].get_current()
    return current if current else None  # a Context is a dict: an empty one is all a thread starts with


def _run_in(context: Any, function: Any, *args: Any, **kwargs: Any) -> Any:
    api = sys.modules["opentelemetry.context"]  # imported: the context was read through it
    token = api.attach(context)
    try:
        return function(*args, **kwargs)
    finally:
        api.detach(token)


def on_import(api: ModuleType) -> None:
    """At the import of the OpenTelemetry context API: before it, no context can be current, so
    a process that never imports it (a script, most management commands) pays nothing."""
    import threading

    from otel_launch._runtime._imports import when_imported

    _carry_into_threads(threading)
    when_imported("concurrent.futures.thread", _carry_into_pools)


def _carry_into_threads(threading: ModuleType) -> None:
    """``Thread.start()`` hands the starting thread's context to the thread's ``run()``."""
    thread_class = threading.Thread
    start = thread_class.start
    if getattr(start, "_otel_launch", False):
        return
    submitting = threading.local()  # set while a pool's submit() starts its worker threads
    _state["submitting"] = submitting

    def start_in_context(self: Any) -> None:
        context = _context_to_carry()
        if context is not None and not getattr(submitting, "active", False) and not _telemetrys_own(self):
            run = self.run  # bound now: a subclass's run(), or Thread.run

            def run_in_context() -> None:
                try:
                    _run_in(context, run)
                finally:
                    self.__dict__.pop("run", None)  # the thread and this function no longer hold each other

            self.run = run_in_context
        start(self)

    start_in_context.__doc__, start_in_context.__wrapped__ = start.__doc__, start  # type: ignore[attr-defined]
    start_in_context._otel_launch = True  # type: ignore[attr-defined]
    thread_class.start = start_in_context


def _telemetrys_own(thread: Any) -> bool:
    """A thread of OpenTelemetry's or otel-launch's own (an export or metric thread, the flush):
    it serves the whole process, and starts with no context, wherever it was started from (a
    fork's renewal runs inside the app's span: the export thread would have kept it for life,
    and its own log records and spans would have joined the app's trace)."""
    target = getattr(thread, "_target", None)
    module = getattr(target, "__module__", None) or ""
    return module.startswith(("opentelemetry.", "otel_launch.")) or type(thread).__module__.startswith(
        ("opentelemetry.", "otel_launch.")
    )


def _carry_into_pools(thread_module: ModuleType) -> None:
    """``ThreadPoolExecutor.submit()`` runs the function in the submitting thread's context."""
    import functools

    executor_class = thread_module.ThreadPoolExecutor
    submit = executor_class.submit
    if getattr(submit, "_otel_launch", False):
        return
    submitting = _state.get("submitting")

    @functools.wraps(submit)
    def submit_in_context(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        context = _context_to_carry()
        if context is None:
            return submit(self, fn, *args, **kwargs)
        if submitting is None:
            return submit(self, functools.partial(_run_in, context, fn), *args, **kwargs)
        submitting.active = True  # a worker thread started now is the pool's, not this work's
        try:
            return submit(self, functools.partial(_run_in, context, fn), *args, **kwargs)
        finally:
            submitting.active = False

    submit_in_context._otel_launch = True  # type: ignore[attr-defined]
    executor_class.submit = submit_in_context
