"""After otel-launch's providers were built by a first use, the app sets its own (accepted: it
replaces ours), then sets another: the API's set-once rule must refuse that one, as it would in
a process without otel-launch. Prints, for traces then metrics, whether the app's first stayed.
"""

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

with trace.get_tracer("early").start_as_current_span("ours"):  # builds otel-launch's provider
    pass
metrics.get_meter("early").create_counter("early").add(1)

apps, later = TracerProvider(), TracerProvider()
trace.set_tracer_provider(apps)
trace.set_tracer_provider(later)
apps_meters, later_meters = MeterProvider(), MeterProvider()
metrics.set_meter_provider(apps_meters)
metrics.set_meter_provider(later_meters)
print(trace.get_tracer_provider() is apps, metrics.get_meter_provider() is apps_meters, flush=True)
