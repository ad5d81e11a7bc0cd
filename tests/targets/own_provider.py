"""An app that sets up its own TracerProvider before anything asks for one."""

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

with trace.get_tracer("app").start_as_current_span("app-span"):
    pass
print(type(trace.get_tracer_provider()).__module__, len(exporter.get_finished_spans()), flush=True)
