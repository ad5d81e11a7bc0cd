"""``otel-launch tail``: a zero-setup local OTLP receiver that prints each finished trace as a tree.

Spans of one trace come from several processes at different times (the web's batch first,
the worker's seconds later). A trace is printed once it is quiet for ``--settle`` seconds
*and* looks complete: one root, every parent present, every publish (producer) span with
its run span. A trace that stays incomplete is printed after ``--wait`` seconds anyway,
marked with what is missing. Spans arriving after their trace was printed re-print the
whole trace, marked ``(updated: ...)``, so a tree is never split in two.
"""

from __future__ import annotations

import json
import math
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import click

from otel_launch._receiver import OTLPReceiver, ReceivedLog, ReceivedPoint, ReceivedSpan

PRODUCER, CONSUMER = 4, 5
KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATEMENT_CAP = 80


def compact_name(name: str) -> str:
    """``LLEN LLEN LLEN GET`` (a Redis pipeline's span name) as ``LLEN x3 GET``."""
    words = name.split()
    if len(words) < 2 or not all(re.fullmatch(r"[A-Z][A-Z0-9_.]*", word) for word in words):
        return name
    runs: list[list[Any]] = []
    for word in words:
        if runs and runs[-1][0] == word:
            runs[-1][1] += 1
        else:
            runs.append([word, 1])
    return " ".join(word if count == 1 else f"{word} x{count}" for word, count in runs)


def _short(value: Any, cap: int = _STATEMENT_CAP) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= cap else text[: cap - 3] + "..."


def span_details(span: ReceivedSpan) -> list[str]:
    """The few attributes that matter for this kind of span, as ``key=value`` words."""
    attrs = span.attributes
    details = []
    status_code = attrs.get("http.response.status_code", attrs.get("http.status_code"))
    if status_code is not None:
        details.append(str(status_code))
    route = attrs.get("http.route")
    if route and route not in span.name:
        details.append(f"route={route}")
    statement = attrs.get("db.statement", attrs.get("db.query.text"))
    # Redis statements are the command names with "?" for arguments: the (compacted) name says it all.
    if statement and span.kind == 3 and attrs.get("db.system", attrs.get("db.system.name")) != "redis":
        details.append(f"statement={_short(statement)}")
    queue_time = attrs.get("celery.task.queue_time")
    if queue_time is not None:
        details.append(f"queued={_seconds(queue_time)}")
    for key, value in sorted(attrs.items()):
        if key.startswith("otel_launch.n_plus_one."):
            details.append(f"n+1 {key.removeprefix('otel_launch.n_plus_one.')}={_short(value, 60)}")
    return details


def _seconds(value: Any) -> str:
    try:
        return f"{float(value) * 1000:.1f} ms"
    except (TypeError, ValueError):
        return str(value)


def missing_parts(spans: list[ReceivedSpan]) -> list[str]:
    """What the trace still lacks: its root, a parent, or the run span of a publish."""
    ids = {span.span_id for span in spans}
    missing = []
    if not any(not span.parent_span_id for span in spans):
        missing.append("root span")
    orphans = sum(1 for span in spans if span.parent_span_id and span.parent_span_id not in ids)
    if orphans:
        missing.append(f"parent of {orphans} span{'s' if orphans != 1 else ''}")
    consumed = {span.parent_span_id for span in spans if span.kind == CONSUMER}
    unconsumed = [span for span in spans if span.kind == PRODUCER and span.span_id not in consumed]
    if unconsumed:
        missing.append(f"run span of {', '.join(sorted({span.name for span in unconsumed}))}")
    return missing


def render_trace(trace_id: str, spans: list[ReceivedSpan], note: str = "") -> list[str]:
    """The lines of one trace: a header, then one line per span, children indented under parents."""
    ids = {span.span_id for span in spans}
    children: dict[str, list[ReceivedSpan]] = {}
    roots = []
    for span in sorted(spans, key=lambda s: s.start_ns):
        if span.parent_span_id and span.parent_span_id in ids:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    # The real root (no parent) first; spans whose parent never came follow it.
    roots.sort(key=lambda s: (bool(s.parent_span_id), s.start_ns))
    total_ms = (max(s.end_ns for s in spans) - min(s.start_ns for s in spans)) / 1e6
    header = f"trace {trace_id}  {len(spans)} span{'s' if len(spans) != 1 else ''}, {total_ms:.1f} ms"
    lines = [header + (f"  ({note})" if note else "")]

    def walk(span: ReceivedSpan, depth: int, parent: ReceivedSpan | None) -> None:
        words = [span.service, compact_name(span.name), f"{span.duration_ms:.1f} ms", *span_details(span)]
        if parent is not None and parent.kind == PRODUCER and span.kind == CONSUMER:
            words.append(f"gap after publish {(span.start_ns - parent.end_ns) / 1e6:.1f} ms")
        if span.status == "ERROR":
            words.append("ERROR" + (f": {span.status_message}" if span.status_message else ""))
        if span.parent_span_id and span.parent_span_id not in ids:
            words.append("(parent not received)")
        lines.append("  " * (depth + 1) + "  ".join(words))
        for child in children.get(span.span_id, []):
            walk(child, depth + 1, span)

    for root in roots:
        walk(root, 0, None)
    return lines


def span_json(span: ReceivedSpan) -> str:
    """One span as one line of JSON, for scripts (``tail --json``)."""
    return json.dumps(
        {
            "trace_id": span.trace_id,
            "span_id": span.span_id,
            "parent_span_id": span.parent_span_id or None,
            "name": span.name,
            "kind": KIND_NAMES.get(span.kind, str(span.kind)),
            "service": span.service,
            "start_unix_nano": span.start_ns,
            "end_unix_nano": span.end_ns,
            "duration_ms": round(span.duration_ms, 3),
            "status": span.status,
            "status_message": span.status_message,
            "attributes": span.attributes,
            "events": span.events,
            "resource": span.resource,
            "scope": span.scope,
        },
        default=repr,
        sort_keys=False,
    )


class TraceAssembler:
    """Collects spans by trace; releases a trace once quiet and complete (or quiet for ``wait``)."""

    def __init__(self, settle: float, emit: Callable[[list[str]], None], wait: float = 10.0) -> None:
        self.settle = settle
        self.wait = max(wait, settle)
        self.emit = emit
        self._spans: dict[str, list[ReceivedSpan]] = {}
        self._last_seen: dict[str, float] = {}
        self._printed: dict[str, int] = {}  # trace id -> spans it had when printed
        self._lock = threading.Lock()

    def add(self, spans: list[ReceivedSpan], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for span in spans:
                self._spans.setdefault(span.trace_id, []).append(span)
                self._last_seen[span.trace_id] = now

    def release(self, now: float | None = None, everything: bool = False) -> None:
        now = time.monotonic() if now is None else now
        batches = []
        with self._lock:
            for trace_id, seen in list(self._last_seen.items()):
                quiet = now - seen
                spans = self._spans[trace_id]
                missing = missing_parts(spans)
                if not (everything or quiet >= self.wait or (quiet >= self.settle and not missing)):
                    continue
                del self._last_seen[trace_id]
                notes = []
                if trace_id in self._printed:
                    late = len(spans) - self._printed[trace_id]
                    notes.append(f"updated: re-printed whole with {late} late span{'s' if late != 1 else ''}")
                if missing:
                    notes.append("incomplete: no " + ", no ".join(missing))
                self._printed[trace_id] = len(spans)
                batches.append((trace_id, list(spans), "; ".join(notes)))
            self._forget_old(now)
        for trace_id, spans, note in sorted(batches, key=lambda b: min(s.start_ns for s in b[1])):
            self.emit(render_trace(trace_id, spans, note))

    def _forget_old(self, now: float, keep: int = 2000) -> None:
        """Printed traces are kept (for a late span's re-print) up to ``keep``, oldest dropped."""
        printed = [t for t in self._printed if t not in self._last_seen]
        for trace_id in printed[: max(0, len(printed) - keep)]:
            del self._printed[trace_id]
            self._spans.pop(trace_id, None)


def _describe_points(points: list[ReceivedPoint]) -> str:
    services = sorted({str(p.resource.get("service.name", "?")) for p in points})
    names = sorted({p.metric for p in points})
    shown = ", ".join(names[:4]) + (f", +{len(names) - 4} more" if len(names) > 4 else "")
    return f"metrics  {', '.join(services)}: {len(points)} points ({shown})"


def _describe_log(log: ReceivedLog) -> str:
    trace = f"  trace {log.trace_id[:8]}" if log.trace_id.strip("0") else ""
    return f"log  {log.resource.get('service.name', '?')}  {log.severity or '-'}  {log.body}{trace}"


PORT = click.IntRange(0, 65535)


def _seconds_option(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and (math.isnan(value) or math.isinf(value) or value <= 0):
        raise click.BadParameter(f"{value!r} is not a positive number of seconds", ctx=ctx, param=param)
    return value


def listen(receiver: OTLPReceiver, host: str) -> None:
    """Start the receiver; a port in use is our one-line error, without gRPC's own log line."""
    import socket

    for port, what in ((receiver.grpc_port, "gRPC"), (receiver.http_port, "HTTP")):
        if port:  # gRPC logs its own error line before failing: check the port first
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
                try:
                    probe.bind((host, port))
                except OSError as exc:
                    message = f"cannot listen for OTLP/{what} on {host}:{port}: {exc.strerror}"
                    raise click.ClickException(message) from None
    try:
        receiver.start()
    except (OSError, RuntimeError) as exc:
        receiver.stop()
        raise click.ClickException(
            f"cannot listen on {host} (grpc {receiver.grpc_port}, http {receiver.http_port}): {exc}"
        ) from None


@click.command(name="tail", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--grpc-port", type=PORT, default=4317, show_default=True, help="OTLP/gRPC port (0: any free port).")
@click.option("--http-port", type=PORT, default=4318, show_default=True, help="OTLP/HTTP port (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--settle",
    type=float,
    default=1.0,
    show_default=True,
    callback=_seconds_option,
    help="Seconds a complete trace must be quiet before it prints.",
)
@click.option(
    "--wait",
    type=float,
    default=10.0,
    show_default=True,
    callback=_seconds_option,
    help="Seconds of quiet after which an incomplete trace (a publish without its run) prints anyway.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per span, as it arrives (for scripts).")
@click.option("--metrics/--no-metrics", default=True, show_default=True, help="Print a line per metrics export.")
@click.option(
    "--exit-after", type=float, default=None, hidden=True, callback=_seconds_option, help="Stop after N s (demos)."
)
def tail_command(
    grpc_port: int,
    http_port: int,
    host: str,
    settle: float,
    wait: float,
    as_json: bool,
    metrics: bool,
    exit_after: float | None,
) -> None:
    """Receive OTLP locally and print each finished trace as a tree: no collector needed."""
    out_lock = threading.Lock()

    def emit(lines: list[str]) -> None:
        with out_lock:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()

    assembler = TraceAssembler(settle, emit, wait=wait)

    def on_receive(signal: str, items: list) -> None:
        if signal == "traces":
            if as_json:
                emit([span_json(span) for span in items])
            else:
                assembler.add(items)
        elif as_json:
            return
        elif signal == "metrics" and metrics and items:
            emit([_describe_points(items)])
        elif signal == "logs":
            emit([_describe_log(item) for item in items])

    receiver = OTLPReceiver(grpc_port=grpc_port, http_port=http_port, host=host, on_receive=on_receive)
    listen(receiver, host)
    message = (
        f"otel-launch tail: OTLP/gRPC on {host}:{receiver.grpc_port}, OTLP/HTTP on {host}:{receiver.http_port}"
        " (Ctrl-C to stop)"
    )
    if as_json:
        sys.stderr.write(message + "\n")
    else:
        emit([message])
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
