"""Serve requests through Django's test client with a sampler that keeps every other request
and a span processor, and print (as JSON) what each saw: the sampler's name, kind and
attributes at each decision; the processor's attributes at on_start of each server span."""

import json
import os
import sys

sys.path.insert(0, sys.argv[1])  # the example shop, for its settings
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult  # noqa: E402

decisions, started = [], []


class EveryOther(Sampler):
    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        decision = Decision.RECORD_AND_SAMPLE if len(decisions) % 2 else Decision.DROP
        decisions.append({"name": name, "kind": str(kind), "attributes": dict(attributes or {})})
        return SamplingResult(decision, attributes, None)

    def get_description(self):
        return "every other"


class SeesStart(SpanProcessor):
    def on_start(self, span, parent_context=None):
        started.append({"name": span.name, "attributes": dict(span.attributes)})


provider = TracerProvider(sampler=EveryOther())  # the app's own provider: otel-launch keeps it
provider.add_span_processor(SeesStart())
trace.set_tracer_provider(provider)

import django  # noqa: E402
from django.conf import settings  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def plain(request):
    return HttpResponse("ok")


urlpatterns = [path("plain/", plain)]
django.setup()
settings.ROOT_URLCONF = __name__
from django.test import Client  # noqa: E402

client = Client()
for _ in range(2):
    assert client.get("/plain/?token=x", HTTP_USER_AGENT="curl/8").status_code == 200
print(json.dumps({"decisions": decisions, "started": started}), flush=True)
