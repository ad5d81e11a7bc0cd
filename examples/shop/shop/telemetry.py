"""The shop's own OpenTelemetry set-up, as the OpenTelemetry guides write it (SHOP_OWN_TELEMETRY=1).

Its providers and resource (with ``service.version``), set in wsgi.py and again in every
Celery pool child at ``worker_process_init``, each with its instrumentors. otel-launch leaves
them in charge and only adds what it adds to its own: flush at exit, pool-child flush.
"""

import os

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

VERSION = "2.4.1"


def enabled():
    return os.environ.get("SHOP_OWN_TELEMETRY") == "1"


def setup(component):
    resource = Resource.create({"service.name": f"shop-own-{component}", "service.version": VERSION})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))

    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

    DjangoInstrumentor().instrument()
    RedisInstrumentor().instrument()
    SQLite3Instrumentor().instrument()
    if os.environ.get("SHOP_PG_DB"):
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        PsycopgInstrumentor().instrument()
