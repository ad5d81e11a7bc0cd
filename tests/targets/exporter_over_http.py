"""Makes one requests and one urllib3 call inside a span, then exits: the OTLP/HTTP exporter
(which itself uses requests and urllib3) sends the spans at exit. Argument: the URL to call."""

import sys

import requests
import urllib3
from opentelemetry import trace

with trace.get_tracer("exporter-target").start_as_current_span("work"):
    requests.get(sys.argv[1], timeout=10)
    urllib3.PoolManager().request("GET", sys.argv[1])
