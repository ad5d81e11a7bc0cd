"""``otel-launch tail``: a zero-setup local OTLP receiver that prints each finished trace as a tree.

Spans of one trace come from several processes at different times (the web's batch first,
the worker's seconds later). A trace is printed once it is quiet for ``--settle`` seconds
*and* looks complete: one root, every parent present, every publish (producer) span with
its run span. A trace that stays incomplete is printed after ``--wait`` seconds anyway,
marked with what is missing. Spans arriving within ``--wait`` seconds after their trace was
printed re-print the whole trace, marked ``(updated: ...)``, so a tree is never split in two;
later ones print on their own, marked ``(continued: ...)``.

Bounded: tail holds the spans of unfinished traces (and of those printed less than ``--wait``
seconds ago) up to ``--max-bytes``; beyond it the oldest printed ones are let go first, then
the oldest unfinished traces print early, marked. A resource counts once in each trace
that holds it. Every control character from span, metric or log data is printed escaped
(``\\x1b``), so that a span cannot drive the terminal; every value is capped, and a tree of any
depth prints (its indent capped, the depth then written out).
"""

from __future__ import annotations

import json
import math
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import click

from otel_launch.local.listen import PORT_TYPE, Size, is_loopback_address, listen, size_text
from otel_launch.local.receiver import (
    KIND_NAMES,
    Export,
    MiB,
    OTLPReceiver,
    ReceivedLog,
    ReceivedPoint,
    ReceivedSpan,
    Rejected,
    closes_cycle,
    span_size,
    value_size,
)

PRODUCER, CONSUMER = 4, 5
_STATEMENT_CAP = 80
_MAX_INDENT = 32  # levels of a tree indented; deeper spans say their depth
_FORGOTTEN_IDS = 10_000  # printed traces remembered (ids only) to mark their late spans


def _escape_table() -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
    table.update({ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"})
    # Bidirectional controls reorder what follows them on the line ("Trojan Source"); the Unicode
    # line and paragraph separators break it.
    bidi = [0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
    table.update({code: f"\\u{code:04x}" for code in bidi})
    return table


_ESCAPES = _escape_table()


def terminal_safe(text: str) -> str:
    """``text`` with every C0/C1 control character (and bidi control) written as an escape, ``\\x1b``."""
    return text.translate(_ESCAPES)


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
    """One line of at most ``cap`` characters. Cut before escaping (at output), so that a cut
    never splits an escape."""
    text = " ".join(str(value).split())
    return text if len(text) <= cap else text[: cap - 3] + "..."


def span_details(span: ReceivedSpan) -> list[str]:
    """The few attributes that matter for this kind of span, as ``key=value`` words."""
    attrs = span.attributes
    details = []
    status_code = attrs.get("http.response.status_code", attrs.get("http.status_code"))
    if status_code is not None:
        details.append(_short(status_code, 20))
    route = attrs.get("http.route")
    if route and str(route) not in span.name:
        details.append(f"route={_short(route, 120)}")
    statement = attrs.get("db.statement", attrs.get("db.query.text"))
    # Redis statements are the command names with "?" for arguments: the (compacted) name says it all.
    if statement and span.kind == 3 and attrs.get("db.system", attrs.get("db.system.name")) != "redis":
        details.append(f"statement={_short(statement)}")
    queue_time = attrs.get("celery.task.queue_time")
    if queue_time is not None:
        details.append(f"queued={_seconds(queue_time)}")
    flags = sorted(key for key in attrs if key.startswith("otel_launch.n_plus_one."))
    for key in flags[:4]:
        details.append(f"n+1 {_short(key.removeprefix('otel_launch.n_plus_one.'), 40)}={_short(attrs[key], 60)}")
    if len(flags) > 4:
        details.append(f"+{len(flags) - 4} more n+1 flags")
    return details


def _seconds(value: Any) -> str:
    try:
        return f"{float(value) * 1000:.1f} ms"
    except (TypeError, ValueError, OverflowError):
        return _short(value, 20)


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
        names = sorted({_short(span.name, 60) for span in unconsumed})
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        missing.append(f"run span of {', '.join(names[:3])}{more}")
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
    # Depth first, children in start order, with a stack of our own: a chain of any length prints.
    stack: list[tuple[ReceivedSpan, int, ReceivedSpan | None]] = [(root, 0, None) for root in reversed(roots)]
    while stack:
        span, depth, parent = stack.pop()
        words = [_short(span.service, 60), _short(compact_name(span.name), 200), f"{span.duration_ms:.1f} ms"]
        words += span_details(span)
        if parent is not None and parent.kind == PRODUCER and span.kind == CONSUMER:
            words.append(f"gap after publish {(span.start_ns - parent.end_ns) / 1e6:.1f} ms")
        if span.status == "ERROR":
            words.append("ERROR" + (f": {_short(span.status_message, 200)}" if span.status_message else ""))
        if span.parent_span_id and span.parent_span_id not in ids:
            words.append("(parent not received)")
        indent = "  " * (min(depth, _MAX_INDENT) + 1) + (f"[depth {depth}] " if depth > _MAX_INDENT else "")
        lines.append(indent + "  ".join(words))
        stack.extend((child, depth + 1, span) for child in reversed(children.get(span.span_id, [])))
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


class _Trace:
    """One trace's spans (by span id) while tail holds them."""

    __slots__ = (
        "spans",
        "parent_of",
        "resources",
        "last_seen",
        "bytes",
        "dropped",
        "printed",
        "printed_at",
        "late",
        "continued",
    )

    def __init__(self, continued: int = 0) -> None:
        self.spans: dict[str, ReceivedSpan] = {}
        self.parent_of: dict[str, str] = {}
        self.resources: dict[int, dict] = {}  # by id: each resource object is counted once in the trace
        self.last_seen = 0.0
        self.bytes = 0
        self.dropped = 0  # spans over the per-trace cap, counted
        self.printed = 0  # spans it had when printed (0: not printed yet)
        self.printed_at = 0.0
        self.late = 0  # spans since it was printed
        self.continued = continued  # spans printed earlier whose spans are no longer held


class TraceAssembler:
    """Collects spans by trace; releases a trace once quiet and complete (or quiet for ``wait``).

    Holds at most about ``max_bytes`` of spans (:func:`span_size`, and each resource once a trace)
    and ``max_spans_per_trace`` spans of one trace (more are refused and counted); a span that
    would close a loop of parents is refused.
    """

    def __init__(
        self,
        settle: float,
        emit: Callable[[list[str]], None],
        wait: float = 10.0,
        max_bytes: int = 64 * MiB,
        max_spans_per_trace: int = 5000,
    ) -> None:
        self.settle = settle
        self.wait = max(wait, settle)
        self.emit = emit
        self.max_bytes = max_bytes
        self.max_spans_per_trace = max_spans_per_trace
        self.held_bytes = 0
        self._pending: dict[str, _Trace] = {}  # first seen first
        self._printed: OrderedDict[str, _Trace] = OrderedDict()  # held for a late span's re-print
        self._forgotten: OrderedDict[str, int] = OrderedDict()  # trace id -> spans printed, no longer held
        self._lock = threading.Lock()

    def add(self, spans: list[ReceivedSpan], now: float | None = None) -> Rejected:
        """Take the (checked) spans of one export; the ones refused, by reason."""
        now = time.monotonic() if now is None else now
        rejected = Rejected()
        resource_sizes: dict[int, int] = {}
        with self._lock:
            for span in spans:
                trace = self._trace(span.trace_id)
                if span.parent_span_id and closes_cycle(span.span_id, span.parent_span_id, trace.parent_of):
                    rejected.add("closing a loop of parents")
                    continue
                old = trace.spans.get(span.span_id)
                if old is None and len(trace.spans) >= self.max_spans_per_trace:
                    trace.dropped += 1
                    rejected.add(f"beyond the {self.max_spans_per_trace} spans a trace holds")
                    continue
                size = span_size(span) - (span_size(old) if old is not None else 0)
                if id(span.resource) not in trace.resources:
                    trace.resources[id(span.resource)] = span.resource
                    if id(span.resource) not in resource_sizes:
                        resource_sizes[id(span.resource)] = value_size(span.resource)
                    size += resource_sizes[id(span.resource)]
                trace.spans[span.span_id] = span
                trace.parent_of[span.span_id] = span.parent_span_id
                trace.bytes += size
                self.held_bytes += size
                trace.last_seen = now
                trace.late += 1 if trace.printed or trace.continued else 0
            forced = self._within_bound()
        self._emit_all(forced)
        return rejected

    def _trace(self, trace_id: str) -> _Trace:
        trace = self._pending.get(trace_id)
        if trace is None:
            trace = self._printed.pop(trace_id, None)  # a late span: the whole trace prints again
            if trace is None:
                trace = _Trace(continued=self._forgotten.pop(trace_id, 0))
            self._pending[trace_id] = trace
        return trace

    def release(self, now: float | None = None, everything: bool = False) -> None:
        now = time.monotonic() if now is None else now
        batches = []
        with self._lock:
            for trace_id, trace in list(self._pending.items()):
                if not trace.spans:  # every span it was sent was refused
                    del self._pending[trace_id]
                    continue
                quiet = now - trace.last_seen
                missing = missing_parts(list(trace.spans.values()))
                if not (everything or quiet >= self.wait or (quiet >= self.settle and not missing)):
                    continue
                del self._pending[trace_id]
                batches.append(self._printing(trace_id, trace, missing, now))
            for trace_id, trace in list(self._printed.items()):  # oldest first
                if now - trace.printed_at < self.wait:
                    break
                self._forget(trace_id, trace)
        self._emit_all(batches)

    def _printing(self, trace_id: str, trace: _Trace, missing: list[str], now: float, early: str = ""):
        notes = []
        if trace.continued:
            notes.append(
                f"continued: {trace.late} late span{'s' if trace.late != 1 else ''} of a trace printed before "
                f"with {trace.continued}"
            )
        elif trace.printed:
            notes.append(f"updated: re-printed whole with {trace.late} late span{'s' if trace.late != 1 else ''}")
        if early:
            notes.append(early)
        if missing and not trace.continued:
            notes.append("incomplete: no " + ", no ".join(missing))
        if trace.dropped:
            notes.append(f"{trace.dropped} more spans not kept (at most {self.max_spans_per_trace} a trace)")
        spans = list(trace.spans.values())
        trace.printed, trace.printed_at, trace.late = len(spans) + trace.continued, now, 0
        if early:
            self._forget(trace_id, trace)
        else:
            self._printed[trace_id] = trace
        return trace_id, spans, "; ".join(notes)

    def _forget(self, trace_id: str, trace: _Trace) -> None:
        """Let a printed trace's spans go, remembering its id (bounded) for a late span's note."""
        self._printed.pop(trace_id, None)
        self.held_bytes -= trace.bytes
        self._forgotten[trace_id] = trace.printed
        while len(self._forgotten) > _FORGOTTEN_IDS:
            self._forgotten.popitem(last=False)

    def _within_bound(self) -> list:
        """Over the bound: let printed traces go, oldest first, then print the oldest unfinished ones."""
        batches = []
        while self.held_bytes > self.max_bytes and self._printed:
            self._forget(*next(iter(self._printed.items())))
        while self.held_bytes > self.max_bytes and self._pending:
            trace_id, trace = next(iter(self._pending.items()))
            del self._pending[trace_id]
            if not trace.spans:
                continue
            early = f"printed early: tail holds at most {size_text(self.max_bytes)} of spans"
            batches.append(self._printing(trace_id, trace, missing_parts(list(trace.spans.values())), 0.0, early))
        return batches

    def _emit_all(self, batches: list) -> None:
        for trace_id, spans, note in sorted(batches, key=lambda b: min(s.start_ns for s in b[1])):
            try:
                lines = render_trace(trace_id, spans, note)
            except Exception as exc:  # noqa: BLE001 - one trace that cannot print costs only itself
                lines = [f"trace {trace_id}  could not be printed: {type(exc).__name__}: {exc}"[:300]]
            self.emit(lines)


def _describe_points(points: list[ReceivedPoint]) -> str:
    services = sorted({_short(p.resource.get("service.name", "?"), 60) for p in points})
    names = sorted({_short(p.metric, 80) for p in points})
    shown = ", ".join(names[:4]) + (f", +{len(names) - 4} more" if len(names) > 4 else "")
    return f"metrics  {_short(', '.join(services[:8]), 200)}: {len(points)} points ({shown})"


def _describe_log(log: ReceivedLog) -> str:
    trace = f"  trace {log.trace_id[:8]}" if log.trace_id.strip("0") else ""
    service, severity = _short(log.resource.get("service.name", "?"), 60), _short(log.severity or "-", 20)
    return f"log  {service}  {severity}  {_short(log.body, 1000)}{trace}"


def _seconds_option(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and (math.isnan(value) or math.isinf(value) or value <= 0):
        raise click.BadParameter(f"{value!r} is not a positive number of seconds", ctx=ctx, param=param)
    return value


@click.command(name="tail", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--grpc-port", type=PORT_TYPE, default=4317, show_default=True, help="OTLP/gRPC port (0: any free port).")
@click.option("--http-port", type=PORT_TYPE, default=4318, show_default=True, help="OTLP/HTTP port (0: any free port).")
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
@click.option(
    "--max-bytes",
    type=Size(MiB),
    default="64M",
    show_default=True,
    help="Spans held for unfinished traces; beyond, the oldest print early (K, M, G).",
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
    max_bytes: int,
    as_json: bool,
    metrics: bool,
    exit_after: float | None,
) -> None:
    """Receive OTLP locally and print each finished trace as a tree: no collector needed."""
    out_lock = threading.Lock()

    def emit(lines: list[str]) -> None:
        text = "\n".join(terminal_safe(line) for line in lines) + "\n"
        with out_lock:
            sys.stdout.write(text)
            sys.stdout.flush()

    assembler = TraceAssembler(settle, emit, wait=wait, max_bytes=max_bytes)

    def on_receive(signal: str, export: Export) -> Rejected:
        rejected = Rejected()
        for items in export:
            if signal == "traces" and as_json:
                for span in items:  # a line at a time: a span's line may be megabytes
                    emit([span_json(span)])
            elif signal == "traces":
                rejected.merge(assembler.add(items))
            elif signal == "metrics":
                emit([_describe_points(items)])
            else:
                emit([_describe_log(item) for item in items])
        return rejected

    signals = ("traces",) if as_json else ("traces", "logs", *(("metrics",) if metrics else ()))
    receiver = OTLPReceiver.viewer(on_receive, host, grpc_port, http_port, signals, is_loopback_address(host))
    listen(receiver)
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
