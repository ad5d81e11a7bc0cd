"""Outgoing requests whose URLs carry a token in the query (and a password before the host),
with requests, urllib, urllib3 and httpx, inside a span, against a local server. Prints "done".
"""

import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import requests
import urllib3
from opentelemetry import trace


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_port}"
query = "?token=ClientSecret55&page=2"
with trace.get_tracer("client").start_as_current_span("calls"):
    requests.get(f"{base}/requests{query}", timeout=10)
    urllib.request.urlopen(f"{base}/urllib{query}", timeout=10).read()
    urllib3.PoolManager().request("GET", f"{base}/urllib3{query}")
    httpx.get(f"{base}/httpx{query}")
server.shutdown()
print("done")
