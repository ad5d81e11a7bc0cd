"""Providers built from ``OTEL_CONFIG_FILE`` (declarative configuration), with our process handling.

The ``opentelemetry-configuration`` package reads the file and builds each part; what it would
do differently from the rest of otel-launch is taken back here:

- every exporter it builds is wrapped in :class:`~otel_launch._runtime._sdk.PerProcessExporter`,
  so a process forked after the provider was built (a Celery pool child, a gunicorn worker)
  builds its own, never a gRPC channel of its parent's (its exporter factories are wrapped
  where it looks them up: ``_SPAN_EXPORTER_REGISTRY``, ``_METRIC_EXPORTER_REGISTRY``,
  ``_LOG_EXPORTER_REGISTRY``);
- providers do not flush from their own atexit handler: ``_sdk`` registers them with
  ``_lifecycle`` (bounded flush at exit, SIGTERM, multiprocessing children);
- the tracer provider is ours (its tracers follow an app's provider set later) and scrubs
  spans before any processor of the file sees them.

The launcher already validated the file; each process reads it again (once), as the SDK would.
The package's internals used here are exercised by tests/unit/test_config_file.py on the
installed package, which fails the day they change.
"""

from __future__ import annotations

import atexit
import os
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ENV = "OTEL_CONFIG_FILE"
_lock = threading.RLock()
_state: dict[str, Any] = {}

# The package's exporter names, as the kinds of _sdk.EXPORTER_CLASSES (None: no class of ours).
_KINDS = {"otlp_grpc": "grpc", "otlp_http": "http/protobuf", "console": "console"}


def active() -> bool:
    return bool(os.environ.get(ENV, "").strip())


def configuration() -> Any:
    """The parsed file, read once per interpreter (the data survives fork)."""
    with _lock:
        if "model" not in _state:
            import logging

            # Checked by the launcher: a newer minor file_format was said there, once.
            logger = logging.getLogger("opentelemetry.configuration.file._loader")
            level = logger.level
            logger.setLevel(logging.ERROR)
            try:
                _state["model"] = _read(os.environ[ENV])
            finally:
                logger.setLevel(level)
            _wrap_exporter_factories()
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


def resource() -> Any:
    """The file's resource, made once per process (detectors report this process's pid)."""
    with _lock:
        if _state.get("resource_pid") != os.getpid():
            from opentelemetry.configuration.file import create_resource

            _state["resource"], _state["resource_pid"] = create_resource(configuration().resource), os.getpid()
        return _state["resource"]


def _wrap_exporter_factories() -> None:
    from opentelemetry.configuration import _logger_provider, _meter_provider, _tracer_provider

    from otel_launch._runtime import _sdk

    class PerProcessMetricExporter(_sdk.PerProcessExporter):
        """The metric reader takes its exporter's preferences at once: this process builds its
        exporter now, a forked child its own on its first export."""

        def __init__(self, signal: str, kind: str | None, make: Any) -> None:
            super().__init__(signal, kind, make)
            real = self._exporter()
            self._preferred_temporality = real._preferred_temporality
            self._preferred_aggregation = real._preferred_aggregation

        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
            return self._exporter().export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def wrap(registry: dict, signal: str, per_process: type) -> None:
        for name, make in list(registry.items()):
            if getattr(make, "otel_launch", False):
                continue

            def per_process_factory(config: Any, make: Any = make, name: str = name) -> Any:
                return per_process(signal, _KINDS.get(name), lambda: make(config))

            per_process_factory.otel_launch = True  # type: ignore[attr-defined]
            registry[name] = per_process_factory

    wrap(_tracer_provider._SPAN_EXPORTER_REGISTRY, "traces", _sdk.PerProcessExporter)
    wrap(_meter_provider._METRIC_EXPORTER_REGISTRY, "metrics", PerProcessMetricExporter)
    wrap(_logger_provider._LOG_EXPORTER_REGISTRY, "logs", _sdk.PerProcessExporter)


def _without_atexit(provider: Any) -> Any:
    """The SDK's own exit flush has no bound; ``_lifecycle`` flushes it instead (``_sdk`` registers it)."""
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


def tracer_provider() -> Any:
    import dataclasses

    from opentelemetry.configuration._tracer_provider import _create_span_processor
    from opentelemetry.configuration.file import create_tracer_provider

    from otel_launch._runtime import _sdk
    from otel_launch._runtime._scrub import ScrubbingSpanProcessor
    from otel_launch._settings import read_setting

    model = configuration()
    if model.tracer_provider is None:  # the spec: no section, no-op provider
        from opentelemetry.trace import NoOpTracerProvider

        return NoOpTracerProvider()
    # Sampler, limits, id generator from the file; processors added below, after the scrubber.
    bare = dataclasses.replace(model.tracer_provider, processors=[])
    provider = _without_atexit(_create(create_tracer_provider, bare, model))
    provider.__class__ = _sdk._provider_whose_tracers_follow_the_app(type(provider))  # methods only
    redact = read_setting("redact", os.environ)
    if redact:
        provider.add_span_processor(ScrubbingSpanProcessor(redact, os.environ))
    for processor in model.tracer_provider.processors:
        provider.add_span_processor(_create_span_processor(processor))
    return provider


def meter_provider() -> Any:
    from opentelemetry.configuration.file import create_meter_provider

    model = configuration()
    if model.meter_provider is None:
        from opentelemetry.metrics import NoOpMeterProvider

        return NoOpMeterProvider()
    return _without_atexit(create_meter_provider(model.meter_provider, resource()))


def logger_provider() -> Any:
    from opentelemetry.configuration.file import create_logger_provider

    model = configuration()
    if model.logger_provider is None:
        from opentelemetry._logs import NoOpLoggerProvider

        return NoOpLoggerProvider()
    return _without_atexit(_create(create_logger_provider, model.logger_provider, model))
