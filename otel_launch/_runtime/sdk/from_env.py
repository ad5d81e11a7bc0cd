"""The SDK from the standard variables.

Sampler, resource attributes, endpoint, headers, timeouts and propagators are read by the SDK
itself from the same variables ``opentelemetry-instrument`` uses; this module only chooses the
parts (``parts.py``) and assembles them.
"""

from __future__ import annotations

import os
from typing import Any

from otel_launch._core.settings import read_setting
from otel_launch._runtime._log import rate_limit
from otel_launch._runtime.sdk.parts import (
    EXPORT_LOGGERS,
    PerProcessExporter,
    PerProcessMetricExporter,
    counting,
    provider_whose_tracers_follow_the_app,
    resource,
    sdk_internal_meter_provider,
)


def _protocol(signal: str) -> str:
    specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "").strip().lower()
    return specific if specific in ("grpc", "http/protobuf") else read_setting("protocol", os.environ)


def exporter_kinds(signal: str) -> list[str]:
    """Keys of EXPORTER_CLASSES for a signal: 'console' or the OTLP protocol in use."""
    names = read_setting(f"{signal}_exporter", os.environ)
    return [_protocol(signal) if name == "otlp" else name for name in names]


def tracer_provider() -> Any:
    """The tracer provider the variables describe (the sampler is read by the SDK itself)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from otel_launch._runtime._scrub import ScrubbingSpanProcessor

    # The sampler comes from OTEL_TRACES_SAMPLER / _ARG, read by the SDK.
    internal = sdk_internal_meter_provider()
    provider = provider_whose_tracers_follow_the_app(TracerProvider)(
        resource=resource(), shutdown_on_exit=False, meter_provider=internal
    )
    # First: processors run in order, and no exporter may see a span before it is scrubbed.
    redact = read_setting("redact", os.environ)
    if redact:
        provider.add_span_processor(ScrubbingSpanProcessor(redact, os.environ))
    rate_limit(*EXPORT_LOGGERS)  # now: the queue may fill before the first export
    counted = counting(BatchSpanProcessor, "on_end", "spans")
    for kind in exporter_kinds("traces"):
        processor_class = counted
        if kind in ("grpc", "http/protobuf"):
            from otel_launch._runtime import _span_export

            if _span_export.usable():  # our OTLP exporters: spans encoded as they end, sent as bytes
                processor_class = counting(_span_export.EncodingBatchSpanProcessor, "on_end", "spans")
        provider.add_span_processor(processor_class(PerProcessExporter("traces", kind), meter_provider=internal))
    return provider


def meter_provider() -> Any:
    """The meter provider the variables describe: a no-op one when no exporter would read it."""
    kinds = exporter_kinds("metrics")
    if not kinds:  # OTEL_METRICS_EXPORTER=none: nothing would read a measurement, take none
        from opentelemetry.metrics import NoOpMeterProvider

        return NoOpMeterProvider()
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    readers = [PeriodicExportingMetricReader(PerProcessMetricExporter(kind)) for kind in kinds]
    return MeterProvider(metric_readers=readers, resource=resource(), shutdown_on_exit=False)


def logger_provider() -> Any:
    """The logger provider the variables describe, scrubbing every record before it is exported."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=resource(), shutdown_on_exit=False)
    redact = read_setting("redact", os.environ)
    if redact:  # first, so that no exporter sees a record unmasked
        from otel_launch._runtime._scrub import ScrubbingLogRecordProcessor

        provider.add_log_record_processor(ScrubbingLogRecordProcessor(redact))
    rate_limit(*EXPORT_LOGGERS)
    counted = counting(BatchLogRecordProcessor, "on_emit", "log records")
    for kind in exporter_kinds("logs"):
        provider.add_log_record_processor(counted(PerProcessExporter("logs", kind)))
    return provider
