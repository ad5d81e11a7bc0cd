"""The parts every provider of otel-launch is made of, whichever way it is configured.

``from_env`` (the standard variables) and ``from_file`` (a configuration file) assemble their
providers from these: the exporter built once per process, in the exporting thread
(:class:`PerProcessExporter`); the batch processors that count their drops and notice a fork no
hook announced (:func:`counting`); the resource made once per process; the tracer provider whose
tracers follow a provider the app sets later (:func:`provider_whose_tracers_follow_the_app`), and
start their spans through ``lean_span``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from otel_launch._runtime import _compat, _lifecycle
from otel_launch._runtime._log import DropReport, rate_limit, warn

_lock = threading.RLock()
_built: dict[str, Any] = {}

_OTLP = "opentelemetry.exporter.otlp.proto"
EXPORTER_CLASSES = {
    ("traces", "grpc"): f"{_OTLP}.grpc.trace_exporter:OTLPSpanExporter",
    ("traces", "http/protobuf"): f"{_OTLP}.http.trace_exporter:OTLPSpanExporter",
    ("traces", "console"): "opentelemetry.sdk.trace.export:ConsoleSpanExporter",
    ("metrics", "grpc"): f"{_OTLP}.grpc.metric_exporter:OTLPMetricExporter",
    ("metrics", "http/protobuf"): f"{_OTLP}.http.metric_exporter:OTLPMetricExporter",
    ("metrics", "console"): "opentelemetry.sdk.metrics.export:ConsoleMetricExporter",
    ("logs", "grpc"): f"{_OTLP}.grpc._log_exporter:OTLPLogExporter",
    ("logs", "http/protobuf"): f"{_OTLP}.http._log_exporter:OTLPLogExporter",
    ("logs", "console"): "opentelemetry.sdk._logs.export:ConsoleLogRecordExporter",
}

_OTLP_SPAN_EXPORTERS = (EXPORTER_CLASSES[("traces", "grpc")], EXPORTER_CLASSES[("traces", "http/protobuf")])

# Loggers that report export failures; rate-limited so a dead collector cannot flood the app.
EXPORT_LOGGERS = (
    f"{_OTLP}.grpc.exporter",
    f"{_OTLP}.http.trace_exporter",
    f"{_OTLP}.http.metric_exporter",
    f"{_OTLP}.http._log_exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
)


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _load_and_build(path: str) -> Any:
    return _load(path)()


_build_locks: dict[int, threading.Lock] = {}


def _build_lock() -> threading.Lock:
    """The lock under which this process builds its exporters, one at a time.

    The span, metric and log export threads each build their exporter at their first export,
    importing the OTLP exporter modules; two threads importing those modules at once can meet
    Python's import deadlock detection, which hands one of them a partially initialised module
    (the export failed: "Exception while exporting Span"). A lock per PID: one copied held into
    a child forked meanwhile stays its parent's entry, and the child takes its own.
    """
    return _build_locks.setdefault(os.getpid(), threading.Lock())


class PerProcessExporter:
    """An exporter built on first export, in the exporting thread, once per process.

    Importing the OTLP exporters costs far more than the rest of start-up (gRPC alone is
    ~150 ms), so it is paid in the background, on the first batch. After ``fork`` the child
    builds its own exporter: a gRPC channel or HTTP session is never shared with the parent.
    """

    def __init__(self, signal: str, kind: str | None, make: Callable[[], Any] | None = None) -> None:
        # ``make``: how to build the exporter (a configuration file's); else the class for ``kind``.
        self._path = EXPORTER_CLASSES.get((signal, kind or ""), "")
        self._make = make if make is not None else functools.partial(_load_and_build, self._path)
        self._real: Any = None
        self._pid: int | None = None

    def _exporter(self) -> Any:
        # The SDK's batch processor and metric reader serialize each signal's exports; the build
        # lock serializes the signals' first builds with each other (see _build_lock).
        if self._pid != os.getpid():
            with _build_lock():
                if self._pid != os.getpid():
                    self._build()
        return self._real

    def _build(self) -> None:
        """Build this process's exporter (the OTLP encoder installed first, for spans)."""
        _lifecycle.fork_waits_for_builds(_build_lock)  # a fork never copies a half-done import
        rate_limit(*EXPORT_LOGGERS)
        encoding = self._path in _OTLP_SPAN_EXPORTERS and _compat.usable("otlp-encoding")
        if encoding:
            from otel_launch._runtime import _otlp_encoding

            if not _otlp_encoding.install(self._path.partition(":")[0]):  # replaced by another hand
                warn(f"{self._path} does not encode with otel-launch's encoder: spans queued encoded are lost")
        self._real = self._make()
        _failed_exports_free_their_batch(self._real)
        if encoding and self._path == _OTLP_SPAN_EXPORTERS[0] and _compat.usable("otlp-grpc-bytes"):
            _otlp_encoding.send_bytes(self._real)  # each batch's bytes sent as they are (gRPC)
        self._pid = os.getpid()

    in_flight = 0  # records of the export in progress: said when a flush gives up (_lifecycle)
    export_started: float | None = None  # when the export in progress started (time.monotonic())
    failing = False  # whether the last export failed: a fork does not wait for this one (_lifecycle)

    def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        self.in_flight = len(batch)
        try:
            return self._watched(lambda: self._exporter().export(batch, *args, **kwargs))
        finally:
            self.in_flight = 0

    def _watched(self, export: Callable[[], Any]) -> Any:
        """``export()``, noting when it started (the exporter's first build included: the lock is
        held over it) and whether it failed."""
        import time

        self.export_started = time.monotonic()
        failed = True
        try:
            result = export()
            failed = getattr(result, "name", "SUCCESS") != "SUCCESS"  # the SDK's *ExportResult enums
            return result
        finally:
            self.failing = failed
            self.export_started = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        if self._pid != os.getpid():
            return True
        return self._real.force_flush(timeout_millis)

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        # Nothing to close if this process never exported; never close a parent's exporter.
        if self._pid == os.getpid():
            self._real.shutdown(*args, **kwargs)


def _failed_exports_free_their_batch(exporter: Any) -> None:
    """Fix for the OTLP exporters (1.45): a failed export keeps its payload in memory.

    Export errors sit in reference cycles, and only a full garbage collection frees a cycle
    that lived through the exporter's retry back-off; a busy app runs one rarely. With the
    collector down, a worker grew by every batch it failed to send (+36 MB in 100 s):

    - gRPC: the exporter records ``result.error = error`` on the object its
      ``export_operation()`` context yields; the error's traceback holds the exporting frame,
      which holds ``result`` and the batch of spans.
    - HTTP: each failed attempt's requests/urllib3 error holds, in its traceback's frames,
      the payload, the socket and an error of its own.

    Dropping the error once its context has recorded it, and the frames of each attempt's
    error, breaks these cycles: what a failed export held is freed at once.
    """
    metrics = getattr(exporter, "_metrics", None)
    export_operation = getattr(metrics, "export_operation", None)
    if export_operation is not None:

        @contextlib.contextmanager
        def export_operation_forgetting_its_error(*args: Any, **kwargs: Any) -> Iterator[Any]:
            result = None
            try:
                with export_operation(*args, **kwargs) as result:
                    yield result
            finally:
                if getattr(result, "error", None) is not None:
                    _clear_tracebacks(result.error)
                    result.error = None

        metrics.export_operation = export_operation_forgetting_its_error

    transport = getattr(getattr(exporter, "_client", None), "_transport", None)
    request = getattr(transport, "request", None)
    if request is not None:

        @functools.wraps(request)
        def request_freeing_its_error(*args: Any, **kwargs: Any) -> Any:
            result = request(*args, **kwargs)
            if getattr(result, "error", None) is not None:
                _clear_tracebacks(result.error)
            return result

        transport.request = request_freeing_its_error
    elif callable(getattr(exporter, "_export", None)) and hasattr(exporter, "_session"):
        # SDK before 1.45: the HTTP exporters post through requests in ``_export``, which raises.
        post = exporter._export

        @functools.wraps(post)
        def post_freeing_its_error(*args: Any, **kwargs: Any) -> Any:
            try:
                return post(*args, **kwargs)
            except Exception as error:
                _clear_tracebacks(error)
                raise error from None

        exporter._export = post_freeing_its_error


def _clear_tracebacks(error: BaseException | None) -> None:
    """Clears the frames an error and the errors behind it hold: their locals form the cycles."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error.__traceback__ = None
        error = error.__cause__ or error.__context__


def counting(processor_class: type, hook: str, what: str) -> type:
    """A batch processor that counts what its full queue drops (see :class:`DropReport`), and
    notices a process forked without Python's fork hooks.

    A full queue is read from the SDK's ``BatchProcessor`` (``_batch_processor._queue`` and
    ``_max_queue_size``, 1.45): tests/unit/runtime/test_log.py runs it on the real SDK and fails the day
    these change.

    The fork: the SDK's batch processor compares ``os.getpid()`` with the pid it was made in on
    every record, and renews its queue and thread when they differ; its ``_pid`` changing
    during a record is the news that no fork hook brought. Reading it costs two attribute
    reads a record, no system call (``_lifecycle.renew_after_unannounced_fork`` does the rest).
    """
    if not _compat.usable("drop-counts"):  # one warning line; the SDK's processor as it is
        return processor_class
    enqueue = getattr(processor_class, hook)

    def counted(self: Any, item: Any) -> None:
        try:
            batch = self._batch_processor
            pid = batch._pid
            full = len(batch._queue) >= batch._max_queue_size and not batch._shutdown
        except Exception:  # never the app's span.end(): drops go uncounted
            batch, pid, full = None, None, False
        if full:
            self._drops.dropped()
        enqueue(self, item)
        if pid is not None and batch._pid != pid and _lifecycle.renew_after_unannounced_fork():
            _lifecycle.first_record()

    def first(self: Any, item: Any) -> None:
        # The first record a processor sees in a process (an instance attribute, removed here:
        # the class's ``counted`` serves every record after it).
        self.__dict__.pop(hook, None)
        counted(self, item)
        _lifecycle.first_record()

    def watch_first_record(self: Any) -> None:
        setattr(self, hook, functools.partial(first, self))

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        processor_class.__init__(self, *args, **kwargs)
        self._drops = DropReport(what)
        self._watch_first_record()
        _lifecycle.track_batcher(self, what)

    def shutdown(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._drops.flush()
        return processor_class.shutdown(self, *args, **kwargs)

    return type(
        f"Counting{processor_class.__name__}",
        (processor_class,),
        {
            "__init__": __init__,
            hook: counted,
            "_watch_first_record": watch_first_record,
            "shutdown": shutdown,
            "__doc__": counting.__doc__,
        },
    )


def resource() -> Any:
    """One Resource for all signals of this process. The SDK renews the process-dependent parts
    (pid, ``service.instance.id``) of providers that exist at fork; a provider first built in a
    child (metrics, often) must not get the parent's, so the Resource is made once per process."""
    with _lock:
        if _built.get("resource_pid") != os.getpid():
            # The OTLP exporters import this module, whose class bodies call Resource.create(),
            # which needs a thread pool; pools refuse work once the interpreter is exiting. A
            # short process builds its exporter at exit, so the import must happen now.
            import opentelemetry.sdk._logs  # noqa: F401
            from opentelemetry.sdk.resources import Resource

            _built["resource"], _built["resource_pid"] = _compat.process_resource(Resource.create()), os.getpid()
        return _built["resource"]


def _lean(tracer: Any) -> Any:
    """``tracer`` starting its spans through ``lean_span``; as it is when that module cannot load
    (one warning line: the SDK's own span path serves, only slower)."""
    try:
        from otel_launch._runtime.sdk import lean_span
    except Exception as exc:
        if not _built.get("lean_span_reported"):
            _built["lean_span_reported"] = True
            warn(f"the SDK's own span path serves, lean_span cannot ({type(exc).__name__}: {exc})")
        return tracer
    return lean_span.lean(tracer)


def provider_whose_tracers_follow_the_app(base: type) -> type:
    """Ours is the default provider: when the app sets its own later (as the guides do in every
    Celery pool child, after our provider was handed to instrumentations in the worker's main
    process), the tracers ours gave out start their spans with the app's provider, resource
    included. One global read a span; nothing changes while ours is the global one."""
    from opentelemetry import trace

    class FollowingTracer:
        __slots__ = ("_ours", "_args", "_provider", "_tracer")

        def __init__(self, ours: Any, tracer: Any, args: tuple) -> None:
            self._ours, self._args, self._provider, self._tracer = ours, args, ours, tracer

        def _current(self) -> Any:
            provider = trace.get_tracer_provider()
            if provider is not self._provider:
                ours = provider is self._ours
                self._tracer = self._ours.get_sdk_tracer(*self._args) if ours else provider.get_tracer(*self._args)
                self._provider = provider
            return self._tracer

        def start_span(self, *args: Any, **kwargs: Any) -> Any:
            return self._current().start_span(*args, **kwargs)

        def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
            return self._current().start_as_current_span(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._current(), name)

    class DefaultTracerProvider(base):  # type: ignore[misc, valid-type]
        def get_sdk_tracer(self, *args: Any) -> Any:
            """The SDK's tracer, starting its spans through ``lean_span`` where the SDK is a proven one."""
            return _lean(base.get_tracer(self, *args))

        def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
            names = ("instrumenting_module_name", "instrumenting_library_version", "schema_url", "attributes")
            args += tuple(kwargs.get(name) for name in names[len(args) :])
            return FollowingTracer(self, self.get_sdk_tracer(*args), args)

    return DefaultTracerProvider


def sdk_internal_meter_provider() -> Any:
    """The SDK's tracers and batch processors ask for the global meter provider for their own
    metrics even when those are off (OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED), which builds
    the metrics SDK (~40 ms) in a process that records no metric. Give them a no-op provider
    unless those metrics are on."""
    if os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower() == "true":
        return None
    from opentelemetry.metrics import NoOpMeterProvider

    return NoOpMeterProvider()


class PerProcessMetricExporter(PerProcessExporter):
    """The metric reader needs the exporter's preferences up front; read them without gRPC."""

    def __init__(
        self, kind: str | None, make: Callable[[], Any] | None = None, preferences: tuple[dict, dict] | None = None
    ) -> None:
        # ``make`` and ``preferences``: a configuration file's exporter, and the preferences it gives.
        super().__init__("metrics", kind, make)
        if preferences is not None:
            self._preferred_temporality, self._preferred_aggregation = preferences
            return
        if kind == "console" or not _compat.usable("metric-preferences"):
            self._preferred_temporality, self._preferred_aggregation = {}, {}
            return
        from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import (
            OTLPMetricExporterMixin,
        )

        # The same parsing of OTEL_EXPORTER_OTLP_METRICS_* preferences the OTLP exporters use.
        self._preferred_temporality = OTLPMetricExporterMixin._get_temporality(self, None)  # type: ignore[arg-type]
        self._preferred_aggregation = OTLPMetricExporterMixin._get_aggregation(self, None)  # type: ignore[arg-type]

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        return self._watched(lambda: self._exporter().export(metrics_data, timeout_millis=timeout_millis, **kwargs))
