"""Where a sampled span's instructions go in the SDK: one piece of ``Tracer.start_span``,
``set_attributes`` and ``end`` at a time, in a loop of N SQL-shaped spans (a CLIENT child of a
recording server span, three attributes), with no span processor unless the piece says so.

``python bench/span_micro.py PIECE N`` runs the loop once; ``python bench/span_micro.py
--count [PIECE ...]`` runs each piece under callgrind with N=200 and N=2200 and prints the
instructions an iteration (the difference / 2000: start-up and exit cancel out). A piece's own
cost is its figure minus the figure of the piece it extends (``loop`` is the bare loop).

Pieces: ``loop``; ``parent`` (the parent's SpanContext from the context), ``ids`` (a span id),
``sampler`` (the default ``parentbased_always_on`` decision), ``context`` (SpanContext and
TraceFlags), ``init`` (``_Span(...)``, not started), ``start`` (``Tracer.start_span``),
``attributes`` (start + ``set_attributes`` of three), ``sdk`` (start + attributes + end),
``readable`` (``_readable_span()`` of a started span); ``lean``, ``lean-start`` and
``lean-attributes``: ``sdk``, ``start`` and ``attributes`` through otel-launch's lean span
(``_runtime/sdk/lean_span.py``); ``sdk+ours``/``lean+ours``: with otel-launch's scrubbing and
encoding processors (the spans encoded and queued, never sent).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PIECES = ("loop", "parent", "ids", "sampler", "context", "init", "start", "attributes", "readable", "sdk")
PIECES += ("lean-start", "lean-attributes", "lean", "sdk+ours", "lean+ours")
ATTRIBUTES = {"db.system": "sqlite", "db.statement": "SELECT 1 FROM orders WHERE id = %s", "db.name": "shop"}


def provider(ours: bool) -> object:
    from opentelemetry.sdk.trace import TracerProvider

    if not ours:
        return TracerProvider()
    os.environ.update(OTEL_BSP_SCHEDULE_DELAY="600000", OTEL_BSP_MAX_QUEUE_SIZE="100000")
    os.environ.update(OTEL_BSP_MAX_EXPORT_BATCH_SIZE="100000", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    from otel_launch._runtime.sdk import from_env

    return from_env.tracer_provider()


def main(piece: str, count: int) -> None:
    from opentelemetry import context as context_api
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider, _Span

    name, _, extra = piece.partition("+")
    sdk_provider = provider(extra == "ours")
    tracer = TracerProvider.get_tracer(sdk_provider, "bench")  # the SDK's (ours hands out one following the app's)
    if name.startswith("lean"):
        from otel_launch._runtime.sdk import lean_span

        tracer = lean_span.lean(tracer)
        name = name[5:] or "sdk"
    server = tracer.start_span("GET /", kind=trace.SpanKind.SERVER)
    context_api.attach(trace.set_span_in_context(server))
    client = trace.SpanKind.CLIENT
    parent = server.get_span_context()
    sampler, ids = tracer.sampler, tracer.id_generator
    span_context = trace.SpanContext(parent.trace_id, 1, False, trace.TraceFlags(1))
    started = tracer.start_span("SELECT", kind=client)

    def one() -> None:  # noqa: C901 (one branch a piece)
        if name == "parent":
            trace.get_current_span(None).get_span_context()
        elif name == "ids":
            ids.generate_span_id()
        elif name == "sampler":
            sampler.should_sample(None, parent.trace_id, "SELECT", client, None, ())
        elif name == "context":
            trace.SpanContext(
                parent.trace_id, 7, is_remote=False, trace_flags=trace.TraceFlags(trace.TraceFlags(1) | 2)
            )
        elif name == "init":
            _Span(
                name="SELECT",
                context=span_context,
                parent=parent,
                sampler=sampler,
                resource=tracer.resource,
                attributes=None,
                span_processor=tracer.span_processor,
                kind=client,
                links=(),
                instrumentation_info=tracer.instrumentation_info,
                record_exception=True,
                set_status_on_exception=True,
                limits=tracer._span_limits,
                instrumentation_scope=tracer._instrumentation_scope,
                record_end_metrics=None,
            )
        elif name == "start":
            tracer.start_span("SELECT", kind=client)
        elif name == "attributes":
            tracer.start_span("SELECT", kind=client).set_attributes(dict(ATTRIBUTES))
        elif name == "readable":
            started._readable_span()
        elif name == "sdk":
            span = tracer.start_span("SELECT", kind=client)
            span.set_attributes(dict(ATTRIBUTES))
            span.end()

    for _ in range(count):
        one()
    if extra == "ours":  # the spans stay queued: the request thread's work is what is counted
        sys.stdout.flush()
        os._exit(0)


def count(pieces: list[str]) -> None:
    """Instructions an iteration of each piece, counted by callgrind."""
    few, more = 200, 2200
    with tempfile.TemporaryDirectory() as tmp:
        for piece in pieces:
            totals = []
            for n in (few, more):
                out = Path(tmp) / f"{piece}.{n}"
                command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
                command += [__file__, piece, str(n)]
                env = {**os.environ, "PYTHONHASHSEED": "0"}
                subprocess.run(command, env=env, check=True, capture_output=True, timeout=1800)
                totals.append(int(re.search(r"^summary: (\d+)", out.read_text(errors="replace"), re.M).group(1)))
            print(f"{piece:12} {(totals[1] - totals[0]) / (more - few) / 1000:8.1f}k instructions", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--count":
        count(sys.argv[2:] or list(PIECES))
    else:
        main(sys.argv[1], int(sys.argv[2]))
