"""``otel-launch tail``: a zero-setup local OTLP receiver that prints each finished trace as a tree.

A trace is printed once no span of it has arrived for ``--settle`` seconds, so spans of
one trace sent by several processes (web, worker) print together. Spans that arrive after
their trace was printed are printed as a continuation under the same trace id.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import click

from otel_launch._receiver import OTLPReceiver, ReceivedLog, ReceivedPoint, ReceivedSpan


def render_trace(trace_id: str, spans: list[ReceivedSpan], continued: bool = False) -> list[str]:
    """The lines of one trace: a header, then one line per span, children indented under parents."""
    ids = {span.span_id for span in spans}
    children: dict[str, list[ReceivedSpan]] = {}
    roots = []
    for span in sorted(spans, key=lambda s: s.start_ns):
        if span.parent_span_id and span.parent_span_id in ids:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    total_ms = (max(s.end_ns for s in spans) - min(s.start_ns for s in spans)) / 1e6
    header = f"trace {trace_id}  {len(spans)} span{'s' if len(spans) != 1 else ''}, {total_ms:.1f} ms"
    lines = [header + ("  (continued)" if continued else "")]

    def walk(span: ReceivedSpan, depth: int) -> None:
        status = span.status + (f": {span.status_message}" if span.status_message else "")
        lines.append(f"{'  ' * (depth + 1)}{span.service}  {span.name}  {span.duration_ms:.1f} ms  {status}")
        for child in children.get(span.span_id, []):
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return lines


class TraceAssembler:
    """Collects spans by trace and releases a trace once it has been quiet for ``settle`` seconds."""

    def __init__(self, settle: float, emit: Callable[[list[str]], None]) -> None:
        self.settle = settle
        self.emit = emit
        self._pending: dict[str, list[ReceivedSpan]] = {}
        self._last_seen: dict[str, float] = {}
        self._printed: set[str] = set()
        self._lock = threading.Lock()

    def add(self, spans: list[ReceivedSpan]) -> None:
        now = time.monotonic()
        with self._lock:
            for span in spans:
                self._pending.setdefault(span.trace_id, []).append(span)
                self._last_seen[span.trace_id] = now

    def release(self, now: float | None = None, everything: bool = False) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            ready = [t for t, seen in self._last_seen.items() if everything or now - seen >= self.settle]
            batches = [(t, self._pending.pop(t), t in self._printed) for t in ready]
            for trace_id in ready:
                del self._last_seen[trace_id]
                self._printed.add(trace_id)
        for trace_id, spans, continued in sorted(batches, key=lambda b: min(s.start_ns for s in b[1])):
            self.emit(render_trace(trace_id, spans, continued))


def _describe_points(points: list[ReceivedPoint]) -> str:
    services = sorted({str(p.resource.get("service.name", "?")) for p in points})
    names = sorted({p.metric for p in points})
    shown = ", ".join(names[:4]) + (f", +{len(names) - 4} more" if len(names) > 4 else "")
    return f"metrics  {', '.join(services)}: {len(points)} points ({shown})"


def _describe_log(log: ReceivedLog) -> str:
    trace = f"  trace {log.trace_id[:8]}" if log.trace_id.strip("0") else ""
    return f"log  {log.resource.get('service.name', '?')}  {log.severity or '-'}  {log.body}{trace}"


@click.command(name="tail")
@click.option("--grpc-port", type=int, default=4317, show_default=True, help="OTLP/gRPC port (0: any free port).")
@click.option("--http-port", type=int, default=4318, show_default=True, help="OTLP/HTTP port (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--settle", type=float, default=1.0, show_default=True, help="Seconds a trace must be quiet before it prints."
)
@click.option("--metrics/--no-metrics", default=True, show_default=True, help="Print a line per metrics export.")
@click.option("--exit-after", type=float, default=None, hidden=True, help="Stop after this many seconds (demos).")
def tail_command(grpc_port: int, http_port: int, host: str, settle: float, metrics: bool, exit_after: float | None):
    """Receive OTLP locally and print each finished trace as a tree: no collector needed."""
    out_lock = threading.Lock()

    def emit(lines: list[str]) -> None:
        with out_lock:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()

    assembler = TraceAssembler(settle, emit)

    def on_receive(signal: str, items: list) -> None:
        if signal == "traces":
            assembler.add(items)
        elif signal == "metrics" and metrics and items:
            emit([_describe_points(items)])
        elif signal == "logs":
            emit([_describe_log(item) for item in items])

    receiver = OTLPReceiver(grpc_port=grpc_port, http_port=http_port, host=host, on_receive=on_receive)
    try:
        receiver.start()
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"cannot listen on {host} (grpc {grpc_port}, http {http_port}): {exc}") from None
    emit(
        [
            f"otel-launch tail: OTLP/gRPC on {host}:{receiver.grpc_port}, OTLP/HTTP on {host}:{receiver.http_port}"
            " (Ctrl-C to stop)"
        ]
    )
    stop = threading.Event()
    deadline = None if exit_after is None else time.monotonic() + exit_after
    try:
        while not stop.wait(min(settle, 0.2)):
            assembler.release()
            if deadline is not None and time.monotonic() >= deadline:
                break
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        assembler.release(everything=True)
