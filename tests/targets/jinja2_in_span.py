"""Renders a jinja2 template inside a span (jinja2 has an instrumentation otel-launch has no module for)."""

import jinja2
from opentelemetry import trace

with trace.get_tracer("jinja2-target").start_as_current_span("page"):
    template = jinja2.Environment(loader=jinja2.DictLoader({"page.html": "Hello {{ name }}"})).get_template("page.html")
    print(template.render(name="world"))
