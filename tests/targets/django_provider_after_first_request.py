"""Serve a request, then set the app's own TracerProvider (as gunicorn's post_fork would, after
otel-launch's served the first request) and serve another: its server span must be the app's."""

import os
import sys

sys.path.insert(0, sys.argv[1])  # the example shop
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

import django  # noqa: E402

django.setup()
from django.test import Client  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

client = Client()
first = client.get("/health/").status_code
exporter = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "the-apps-own"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
second = client.get("/health/").status_code
servers = [span.name for span in exporter.get_finished_spans() if span.kind == trace.SpanKind.SERVER]
print(first, second, ",".join(servers), flush=True)
