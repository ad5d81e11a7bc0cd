"""An app that sets its own TracerProvider with no span processor (as bookwyrm does) and, with
argv[1] "adds-one", adds its own exporter later (as bookwyrm does when its own setting says so)."""

import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

provider = TracerProvider()
trace.set_tracer_provider(provider)
with trace.get_tracer("app").start_as_current_span("before-its-own"):
    pass
exporter = InMemorySpanExporter()
if sys.argv[1:] == ["adds-one"]:
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with trace.get_tracer("app").start_as_current_span("after-its-own"):
        pass
print(trace.get_tracer_provider() is provider, [span.name for span in exporter.get_finished_spans()], flush=True)
