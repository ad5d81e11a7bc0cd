"""The app runs RequestsInstrumentor itself, after importing requests, then calls a local server
inside a span: its own instrumentation stands, and the call is traced once."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from opentelemetry import trace
from opentelemetry.instrumentation.requests import RequestsInstrumentor


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
RequestsInstrumentor().instrument()
with trace.get_tracer("app").start_as_current_span("app-span"):
    for _ in range(2):
        print(requests.get(f"http://127.0.0.1:{server.server_port}/", timeout=10).status_code)
server.shutdown()
