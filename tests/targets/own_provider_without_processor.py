"""An app that sets its own TracerProvider with no span processor (as bookwyrm does) and, with
argv[1] "adds-one", adds its own exporter after its first span; with "adds-at-once", right after
setting the provider, before any span (as OpenTelemetry's getting-started guide does)."""

import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

provider = TracerProvider()
trace.set_tracer_provider(provider)
exporter = InMemorySpanExporter()
if sys.argv[1:] == ["adds-at-once"]:
    provider.add_span_processor(SimpleSpanProcessor(exporter))
with trace.get_tracer("app").start_as_current_span("before-its-own"):
    pass
if sys.argv[1:] == ["adds-one"]:
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with trace.get_tracer("app").start_as_current_span("after-its-own"):
        pass
print(trace.get_tracer_provider() is provider, [span.name for span in exporter.get_finished_spans()], flush=True)
