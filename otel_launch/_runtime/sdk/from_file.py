"""Providers built from ``OTEL_CONFIG_FILE`` (declarative configuration), with our process handling.

The ``opentelemetry-configuration`` package reads the file and builds each part; what it would
do differently from the rest of otel-launch is taken back here:

- every exporter of the file (a plugin's too) is wrapped in
  :class:`~otel_launch._runtime.sdk.parts.PerProcessExporter` and built by the package's factory on
  its first export in each process: a process forked after the provider was built (a Celery
  pool child, a gunicorn worker) builds its own, never a gRPC channel of its parent's, and
  nothing imports gRPC on the start-up path. Span and log processors are built here, with the
  drop reports of the rest of otel-launch; metric readers by the package, whose push-exporter
  factory is wrapped (``_meter_provider._create_push_metric_exporter``);
- providers do not flush from their own atexit handler: the package (``sdk``) registers them with
  ``_lifecycle`` (bounded flush at exit, SIGTERM, multiprocessing children);
- the tracer provider is ours (its tracers follow an app's provider set later); spans and log
  records are scrubbed before any processor of the file sees them;
- the package's warnings never print a header value of the file.

The launcher already validated the file; each process reads it again (once), as the SDK would.
The package's internals used here are exercised by tests/unit/launcher/test_config_file.py on the
installed package, which fails the day they change.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading

from otel_launch._core.masking import header_values, mask_text
from otel_launch._core.settings import read_setting
from otel_launch._runtime._log import rate_limit
from otel_launch._runtime.sdk import parts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ENV = "OTEL_CONFIG_FILE"
_lock = threading.RLock()
_state: dict[str, Any] = {}

# The package's exporter names, as the kinds of parts.EXPORTER_CLASSES (None: no class of ours).
_KINDS = {"otlp_grpc": "grpc", "otlp_http": "http/protobuf", "console": "console"}
_PACKAGE_LOGGERS = ("", "._common", "._tracer_provider", "._meter_provider", "._logger_provider", "._resource")
_BUILT_IN = ("otlp_grpc", "otlp_http", "console", "otlp_file_development")


def active() -> bool:
    return bool(os.environ.get(ENV, "").strip())


def configuration() -> Any:
    """The parsed file, read once per interpreter (the data survives fork)."""
    with _lock:
        if "model" not in _state:
            # Checked by the launcher: a newer minor file_format was said there, once.
            logger = logging.getLogger("opentelemetry.configuration.file._loader")
            level = logger.level
            logger.setLevel(logging.ERROR)
            try:
                _state["model"] = _read(os.environ[ENV])
            finally:
                logger.setLevel(level)
            secrets = header_values(file_data=_state["model"])
            if secrets:  # a logger's filter sees only its own records: each module's logger
                masking = _MaskValues(secrets)
                for module in _PACKAGE_LOGGERS:
                    logging.getLogger(f"opentelemetry.configuration{module}").addFilter(masking)
            _wrap_metric_exporter_factory()
        return _state["model"]


def _read(path: str) -> Any:
    """The file as the package reads it, less its schema check (~250 ms a process, ~8 ms
    without): the launcher checked this file before the target started."""
    from opentelemetry.configuration.file import _loader

    parse, to_model = getattr(_loader, "_parse_config_content", None), getattr(_loader, "_dict_to_model", None)
    if parse is None or to_model is None:  # another release of the package: its full path
        return _loader.load_config_file(path)
    with open(path, encoding="utf-8") as handle:
        return to_model(parse(handle.read(), os.path.splitext(path)[1].lower(), path))


class _MaskValues(logging.Filter):
    """Masks the given values in a record's message (formatted once, here)."""

    def __init__(self, values: list[str]) -> None:
        super().__init__()
        self._values = values

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask_text(record.getMessage(), values=self._values), ()
        return True


def resource() -> Any:
    """The file's resource, made once per process (detectors report this process's pid)."""
    with _lock:
        if _state.get("resource_pid") != os.getpid():
            from opentelemetry.configuration.file import create_resource

            _state["resource"], _state["resource_pid"] = create_resource(configuration().resource), os.getpid()
        return _state["resource"]


def _own(exporter_config: Any) -> tuple[str | None, Any]:
    """(our kind for parts.EXPORTER_CLASSES, the built-in exporter's settings) of an exporter
    block; (None, None) for a plugin."""
    for name in _BUILT_IN:
        value = getattr(exporter_config, name, None)
        if value is not None:
            return _KINDS.get(name), value
    return None, None


def span_exporter(exporter_config: Any) -> Any:
    """The file's span exporter, built by the package in each process, on its first export."""
    from opentelemetry.configuration._tracer_provider import _create_span_exporter

    kind = _own(exporter_config)[0]
    return parts.PerProcessExporter("traces", kind, lambda: _create_span_exporter(exporter_config))


def log_exporter(exporter_config: Any) -> Any:
    """The file's log record exporter, built by the package in each process, on its first export."""
    from opentelemetry.configuration._logger_provider import _create_log_record_exporter

    kind = _own(exporter_config)[0]
    return parts.PerProcessExporter("logs", kind, lambda: _create_log_record_exporter(exporter_config))


def metric_exporter(exporter_config: Any, create: Any) -> Any:
    """The reader takes its exporter's preferences at once: a built-in exporter's come from the
    file, mapped by the package's own functions (no exporter built, no gRPC before a fork); a
    plugin is built in this process to ask it (a forked child builds its own all the same)."""
    from opentelemetry.configuration import _meter_provider

    kind, own = _own(exporter_config)
    exporter = parts.PerProcessMetricExporter(kind, lambda: create(exporter_config), preferences=({}, {}))
    if own is not None:
        exporter._preferred_temporality = _meter_provider._map_temporality(own.temporality_preference)
        exporter._preferred_aggregation = _meter_provider._map_histogram_aggregation(own.default_histogram_aggregation)
    else:
        real = exporter._exporter()
        exporter._preferred_temporality = real._preferred_temporality
        exporter._preferred_aggregation = real._preferred_aggregation
    return exporter


def _wrap_metric_exporter_factory() -> None:
    from opentelemetry.configuration import _meter_provider

    create = _meter_provider._create_push_metric_exporter
    if getattr(create, "original", None) is not None:  # wrapped already
        return

    def per_process(exporter_config: Any) -> Any:
        return metric_exporter(exporter_config, create)

    per_process.original = create  # type: ignore[attr-defined]
    _meter_provider._create_push_metric_exporter = per_process


def _without_atexit(provider: Any) -> Any:
    """The SDK's own exit flush has no bound; ``_lifecycle`` flushes it instead (the package registers it)."""
    handler = getattr(provider, "_atexit_handler", None)
    if handler is not None:
        atexit.unregister(handler)
        provider._atexit_handler = None
    return provider


def _create(create: Any, section: Any, model: Any) -> Any:
    """``create(section, resource, global_attribute_limits)``; the package's 0.65b0 takes no limits
    (its providers do not apply the file's top-level attribute_limits)."""
    import inspect

    if "global_attribute_limits" in inspect.signature(create).parameters:
        return create(section, resource(), global_attribute_limits=model.attribute_limits)
    return create(section, resource())


def _processors(configs: Any, batch_class: type, simple_class: type, make: Any, what: str, **extra: Any) -> list:
    """The file's batch/simple processors, ours: per-process exporters, drops counted."""
    counting = parts.counting(batch_class, "on_end" if what == "spans" else "on_emit", what)
    built = []
    for config in configs or []:
        if config.batch is not None:
            batch = config.batch
            built.append(
                counting(
                    make(batch.exporter),
                    max_queue_size=batch.max_queue_size,
                    schedule_delay_millis=batch.schedule_delay,
                    max_export_batch_size=batch.max_export_batch_size,
                    export_timeout_millis=batch.export_timeout,
                    **extra,
                )
            )
        elif config.simple is not None:
            built.append(simple_class(make(config.simple.exporter)))
    return built


def tracer_provider() -> Any:
    import dataclasses

    from opentelemetry.configuration.file import create_tracer_provider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    from otel_launch._runtime._scrub import ScrubbingSpanProcessor

    model = configuration()
    if model.tracer_provider is None:  # the spec: no section, no-op provider
        from opentelemetry.trace import NoOpTracerProvider

        return NoOpTracerProvider()
    # Sampler, limits, id generator from the file; processors added below, after the scrubber.
    bare = dataclasses.replace(model.tracer_provider, processors=[])
    provider = _without_atexit(_create(create_tracer_provider, bare, model))
    provider.__class__ = parts.provider_whose_tracers_follow_the_app(type(provider))  # methods only
    internal = parts.sdk_internal_meter_provider()
    if internal is not None:  # as without a file: the SDK's own metrics only when asked for
        provider._meter_provider = internal
    redact = read_setting("redact", os.environ)
    if redact:
        provider.add_span_processor(ScrubbingSpanProcessor(redact, os.environ))
    rate_limit(*parts.EXPORT_LOGGERS)
    processors = model.tracer_provider.processors
    extra = {"meter_provider": internal} if internal is not None else {}
    for processor in _processors(processors, BatchSpanProcessor, SimpleSpanProcessor, span_exporter, "spans", **extra):
        provider.add_span_processor(processor)
    return provider


def meter_provider() -> Any:
    from opentelemetry.configuration.file import create_meter_provider

    model = configuration()
    if model.meter_provider is None:
        from opentelemetry.metrics import NoOpMeterProvider

        return NoOpMeterProvider()
    return _without_atexit(create_meter_provider(model.meter_provider, resource()))


def logger_provider() -> Any:
    import dataclasses

    from opentelemetry.configuration.file import create_logger_provider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor

    model = configuration()
    if model.logger_provider is None:
        from opentelemetry._logs import NoOpLoggerProvider

        return NoOpLoggerProvider()
    # Limits and logger configurator from the file; processors after the scrubber, as for spans.
    bare = dataclasses.replace(model.logger_provider, processors=[])
    provider = _without_atexit(_create(create_logger_provider, bare, model))
    redact = read_setting("redact", os.environ)
    if redact:
        from otel_launch._runtime._scrub import ScrubbingLogRecordProcessor

        provider.add_log_record_processor(ScrubbingLogRecordProcessor(redact))
    rate_limit(*parts.EXPORT_LOGGERS)
    processors = model.logger_provider.processors
    built = _processors(processors, BatchLogRecordProcessor, SimpleLogRecordProcessor, log_exporter, "log records")
    for processor in built:
        provider.add_log_record_processor(processor)
    return provider
