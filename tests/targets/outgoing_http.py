"""Calls a local HTTP server with requests, urllib, urllib3 and httpx (sync and async), inside a
span and outside any, with baggage set; prints, as JSON, the traceparent and baggage headers
each request carried (or null).

Argument: the span's name. The server runs in this process, on a free port.
"""

import asyncio
import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import requests
import urllib3
from opentelemetry import baggage, context, trace

received = []


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        headers = self.headers
        received.append(
            {"path": self.path, "traceparent": headers.get("traceparent"), "baggage": headers.get("baggage")}
        )
        body = b"ok"
        self.send_response(200 if self.path != "/missing" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_port}"


async def with_async_httpx(path):
    async with httpx.AsyncClient() as client:
        await client.get(base + path)


def call_all(where):
    requests.get(f"{base}/requests-{where}?token=abc", timeout=10)
    urllib.request.urlopen(f"{base}/urllib-{where}", timeout=10).read()
    urllib3.PoolManager().request("GET", f"{base}/urllib3-{where}")
    httpx.get(f"{base}/httpx-{where}")
    asyncio.run(with_async_httpx(f"/httpx-async-{where}"))


context.attach(baggage.set_baggage("tenant", "acme"))
call_all("outside")
with trace.get_tracer("outgoing").start_as_current_span(sys.argv[1]):
    call_all("inside")
    requests.get(f"{base}/missing", timeout=10)
server.shutdown()
print(json.dumps(received))
