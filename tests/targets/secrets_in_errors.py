"""Real failing requests whose errors carry secrets: requests and urllib3 to a closed port, with a
token in the query and a password before the host; the failures are recorded on spans (exception
events, error statuses) and logged with ``logger.exception``.

Argument: a closed port on 127.0.0.1. The URLs are written out so that the stack traces' source
lines carry the secrets too, as an app's own code often does.
"""

import logging
import sys

import requests
import urllib3
from opentelemetry import trace

PORT = sys.argv[1]
log = logging.getLogger("shop.fetch")
tracer = trace.get_tracer("shop")


def with_requests():
    requests.get("http://127.0.0.1:" + PORT + "/p?token=TokSecret11&page=2", timeout=5)


def with_urllib3():
    pool = urllib3.PoolManager(retries=urllib3.Retry(0))
    pool.request("GET", "http://ann:PwSecret22@127.0.0.1:" + PORT + "/x?api_key=KeySecret33")


def with_a_dsn_in_the_message():
    raise RuntimeError("cannot reach postgresql://ann:PwSecret22@db/shop")


for name, call in (("requests", with_requests), ("urllib3", with_urllib3), ("app", with_a_dsn_in_the_message)):
    try:
        with tracer.start_as_current_span(f"fetch-{name}"):
            call()
    except Exception:
        log.exception("fetch %s failed", name)
print("done")
