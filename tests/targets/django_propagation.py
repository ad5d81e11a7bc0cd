"""Serve requests carrying trace context and baggage, or not, through Django's test client (WSGI),
and print as JSON what the view saw of them: the trace it runs in (the incoming one or a new one),
whether that trace is sampled, the span id it would pass on (a new one, never the caller's), and the
baggage. Run under otel-launch and under opentelemetry-instrument: the same lines are expected."""

import json
import os
import sys

sys.path.insert(0, sys.argv[1])  # the example shop, for its settings
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

import django  # noqa: E402
from django.conf import settings  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from opentelemetry import baggage, trace  # noqa: E402

TRACE_ID, SPAN_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


def seen(request):
    context = trace.get_current_span().get_span_context()
    trace_id = format(context.trace_id, "032x")
    span_id = format(context.span_id, "016x")
    return HttpResponse(
        json.dumps(
            {
                "trace": "incoming" if trace_id == TRACE_ID else ("new" if context.is_valid else "none"),
                "sampled": context.trace_flags.sampled,
                "span": "caller's" if span_id == SPAN_ID else "own",
                "baggage": dict(baggage.get_all()),
            },
            sort_keys=True,
        )
    )


urlpatterns = [path("seen/", seen)]

django.setup()
settings.ROOT_URLCONF = __name__
from django.test import Client  # noqa: E402

HEADERS = [
    {},
    {"HTTP_TRACEPARENT": f"00-{TRACE_ID}-{SPAN_ID}-01"},
    {"HTTP_TRACEPARENT": f"00-{TRACE_ID}-{SPAN_ID}-00"},
    {"HTTP_TRACEPARENT": f"00-{TRACE_ID}-{SPAN_ID}-01", "HTTP_TRACESTATE": "vendor=1", "HTTP_BAGGAGE": "tenant=acme"},
    {"HTTP_BAGGAGE": "tenant=acme,region=eu"},
    {"HTTP_B3": f"{TRACE_ID}-{SPAN_ID}-1"},
    {},
]
client = Client()
for headers in HEADERS:
    print(client.get("/seen/", **headers).content.decode(), flush=True)
