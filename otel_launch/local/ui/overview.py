"""The numbers behind ``/api/metrics/series`` and ``/api/overview``, from the stored points and spans.

Each stored series (one process, one attribute set) is turned into changes (:func:`series.deltas`),
each change is shared out over the steps (aligned on the epoch) of the interval it covers
(:func:`series.spread`: a rate, not a spike in the step of the export), and the series of the
processes of one service with the same attributes are added up. Counters and histograms give per-step changes;
gauges and non-monotonic sums (up-down counters: what is there now) give, per step, the last
value of each process, added up over the service's processes. Percentiles come from the summed
bucket counts (:func:`series.quantile`), over the streams whose bucket bounds are those of the
most counted ones.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from otel_launch.local.ui.series import Point, add_counts, deltas, quantile, spread, step_starts
from otel_launch.local.ui.store import QueryTooLong
from otel_launch.local.ui.telemetry import Store

NS = 1_000_000_000
LOOKBACK_S = 300  # points read before the window: the baseline a cumulative stream is differenced from
HTTP_NEW, HTTP_OLD = "http.server.request.duration", "http.server.duration"
TASK_DURATION, TASK_QUEUE, TASK_EXECUTIONS = (
    "messaging.process.duration",
    "celery.task.queue_time",
    "celery.task.executions",
)
WORKER_GAUGES = {
    "celery.worker.tasks.executing": "executing",
    "celery.worker.tasks.prefetched": "prefetched",
    "celery.worker.tasks.scheduled": "scheduled",
}
STATES = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry", "REVOKED": "revoked"}
# The error.type of a run whose pool child was killed under it (otel-launch's killed.py records them).
KILLED_ERRORS = {"WorkerLostError", "TimeLimitExceeded", "SystemExit", "KeyboardInterrupt"}
TASKS_CHARTED = 20  # task_series: the tasks that took the most time
ROWS_LISTED = 200  # routes and tasks tables


@dataclass
class Window:
    """The steps a window is read in."""

    since_s: float
    step_s: int
    now_ns: int = field(default_factory=time.time_ns)

    def __post_init__(self) -> None:
        self.step_ns = self.step_s * NS
        self.first_ns, self.steps = step_starts(self.now_ns, self.since_s, self.step_s)
        self.start_ns = self.now_ns - int(self.since_s * NS)

    @property
    def read_from_ns(self) -> int:
        """Where reading starts: whole steps before the first, at least LOOKBACK_S seconds."""
        return self.first_ns - math.ceil(max(LOOKBACK_S, 2 * self.step_s) / self.step_s) * self.step_ns

    def times_ms(self) -> list[int]:
        return [(self.first_ns + index * self.step_ns) // 1_000_000 for index in range(self.steps)]

    def index(self, time_ns: int) -> int | None:
        index = (time_ns - self.first_ns) // self.step_ns
        return index if 0 <= index < self.steps else None


@dataclass
class Stepped:
    """One output series (a service and an attribute set), per step."""

    kind: str
    unit: str
    service: str
    attributes: dict[str, Any]
    values: list[float | None]
    count: list[float]
    sum: list[float]
    counts: list[list[float] | None]
    bounds: list[float] | None = None
    last: dict[str, dict[int, tuple[int, float]]] = field(default_factory=dict)  # gauges: process -> step -> last

    def total_count(self) -> float:
        return sum(self.count)

    def total_sum(self) -> float:
        return sum(self.sum)

    def window_counts(self) -> list[float] | None:
        total = None
        for counts in self.counts:
            if counts is not None:
                total = add_counts(total, counts)
        return total


def _point(row: Any, histogram: bool) -> Point:
    if histogram:
        return Point(
            row["start_ns"], row["time_ns"], row["sum"] or 0.0, row["count"] or 0, tuple(json.loads(row["counts"]))
        )
    return Point(row["start_ns"], row["time_ns"], row["value"] or 0.0)


def stepped(series_rows: dict[int, Any], rows: Iterable[Any], window: Window) -> list[Stepped]:
    """The stored streams (:meth:`Store.point_rows`: their series, and the points of them in
    ``rows``), in steps, added up by service and attributes."""
    out: dict[tuple, Stepped] = {}
    streams: dict[int, list[Any]] = {}
    for row in rows:
        streams.setdefault(row["series"], []).append(row)
    for series_id, stream in streams.items():
        head = series_rows[series_id]
        kind, histogram = head["kind"], head["kind"] == "histogram"
        gauge = kind == "gauge" or (kind == "sum" and not head["monotonic"] and head["temporality"] != 1)
        key = (head["name"], head["service"], head["attributes"])
        series = out.get(key)
        if series is None:
            series = out[key] = Stepped(
                kind, head["unit"], head["service"], json.loads(head["attributes"]), [None] * window.steps,
                [0.0] * window.steps, [0.0] * window.steps, [None] * window.steps,
                json.loads(head["bounds"]) if histogram else None,
            )  # fmt: skip
        if gauge:
            last = series.last.setdefault(head["process"], {})
            for row in stream:
                index = window.index(row["time_ns"])
                later = index is not None and (index not in last or last[index][0] <= row["time_ns"])
                if later and row["time_ns"] >= window.start_ns:
                    last[index] = (row["time_ns"], row["value"] or 0.0)
            continue
        points = [_point(row, histogram) for row in stream]
        same_bounds = not histogram or json.loads(head["bounds"]) == series.bounds
        for change in deltas(points, head["temporality"] == 2, window.start_ns):
            shares = spread(
                change.from_ns, change.time_ns, window.first_ns, window.step_ns, window.steps, window.start_ns
            )
            for index, share in shares:
                if histogram:
                    series.count[index] += change.count * share
                    series.sum[index] += change.value * share
                    if same_bounds:
                        series.counts[index] = add_counts(series.counts[index], [c * share for c in change.counts])
                else:
                    series.values[index] = (series.values[index] or 0.0) + change.value * share
    for series in out.values():
        for by_step in series.last.values():
            for index, (_, value) in by_step.items():
                series.values[index] = (series.values[index] or 0.0) + value
    return list(out.values())


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def series_answer(store: Store, name: str, service: str | None, window: Window) -> dict[str, Any] | None:
    """``/api/metrics/series``: None for a metric the store has no series of."""
    names = [m for m in store.metric_names(service) if m["name"] == name]
    if not names:
        return None
    meta = names[0]
    series_rows, rows = store.point_rows([name], service, window.read_from_ns, window.step_ns)
    times = window.times_ms()
    series = []
    for one in stepped(series_rows, rows, window):
        if one.kind == "histogram":
            points = []
            for index, t in enumerate(times):
                if not one.count[index]:
                    continue
                counts, bounds = one.counts[index], one.bounds or []
                points.append(
                    {
                        "t": t,
                        "count": _round(one.count[index]),
                        "sum": _round(one.sum[index]),
                        "rate": _round(one.count[index] / window.step_s),
                        **{
                            f"p{q}": _round(quantile(q / 100, bounds, counts) if counts else None) for q in (50, 95, 99)
                        },
                    }
                )
        else:
            points = [{"t": t, "value": _round(v)} for t, v in zip(times, one.values, strict=True) if v is not None]
        series.append({"service": one.service, "attributes": one.attributes, "points": points})
    series.sort(key=lambda s: (s["service"], json.dumps(s["attributes"], sort_keys=True)))
    return {
        "name": name,
        "kind": meta["kind"],
        "unit": meta["unit"],
        "monotonic": meta["monotonic"],
        "description": meta["description"],
        "since_s": window.since_s,
        "step_s": window.step_s,
        "series": series,
    }


# -- the overview ------------------------------------------------------------------------------


def _to_ms(unit: str) -> float:
    return {"s": 1000.0, "ms": 1.0, "us": 0.001, "ns": 1e-6, "seconds": 1000.0}.get(unit, 1000.0)


class _Percentiles:
    """Bucket counts added up over streams, kept for the bounds most counted."""

    def __init__(self) -> None:
        self.by_bounds: dict[tuple, list[float]] = {}

    def add(self, bounds: list[float] | None, counts: list[float] | None) -> None:
        if bounds is None or counts is None:
            return
        key = tuple(bounds)
        self.by_bounds[key] = add_counts(self.by_bounds.get(key), counts)

    def value(self, q: float, scale: float = 1.0) -> float | None:
        if not self.by_bounds:
            return None
        bounds, counts = max(self.by_bounds.items(), key=lambda item: sum(item[1]))
        found = quantile(q, list(bounds), counts)
        return None if found is None else round(found * scale, 3)


def _sum_steps(rows: list[Stepped], steps: int, pick: Callable[[Stepped], bool] = lambda s: True) -> list[float]:
    total = [0.0] * steps
    for one in rows:
        if pick(one):
            for index in range(steps):
                total[index] += one.count[index] if one.kind == "histogram" else (one.values[index] or 0.0)
    return total


def _web(by_name: dict[str, list[Stepped]], window: Window) -> dict[str, Any]:
    # The new conventions' metric, and the old one of the services that send only that.
    new = by_name.get(HTTP_NEW, [])
    with_new = {one.service for one in new}
    rows = new + [one for one in by_name.get(HTTP_OLD, []) if one.service not in with_new]
    steps = window.steps
    requests, errors = [0.0] * steps, [0.0] * steps
    per_step = [_Percentiles() for _ in range(steps)]
    routes: dict[tuple, dict[str, Any]] = {}
    for one in rows:
        attrs = one.attributes
        status = attrs.get("http.response.status_code", attrs.get("http.status_code"))
        failed = isinstance(status, (int, float)) and not isinstance(status, bool) and status >= 500
        scale = _to_ms(one.unit)
        method = str(attrs.get("http.request.method", attrs.get("http.method", "")))
        route = str(attrs.get("http.route", attrs.get("http.target", "")))
        entry = routes.setdefault(
            (one.service, method, route),
            {"service": one.service, "method": method, "route": route, "requests": 0.0, "errors": 0.0,
             "time_ms": 0.0, "percentiles": _Percentiles(), "scale": scale},
        )  # fmt: skip
        for index in range(steps):
            requests[index] += one.count[index]
            if failed:
                errors[index] += one.count[index]
            per_step[index].add(one.bounds, one.counts[index])
        entry["requests"] += one.total_count()
        entry["errors"] += one.total_count() if failed else 0
        entry["time_ms"] += one.total_sum() * scale
        entry["percentiles"].add(one.bounds, one.window_counts())
    scale = _to_ms(rows[0].unit) if rows else 1000.0
    table = []
    for entry in routes.values():
        if not entry["requests"]:
            continue
        table.append(
            {
                "service": entry["service"],
                "method": entry["method"],
                "route": entry["route"],
                "rate": round(entry["requests"] / window.since_s, 4),
                "requests": round(entry["requests"]),
                "errors": round(entry["errors"]),
                "error_rate": round(entry["errors"] / entry["requests"], 4),
                "p95_ms": entry["percentiles"].value(0.95, entry["scale"]),
                "time_s": round(entry["time_ms"] / 1000, 6),
            }
        )
    table.sort(key=lambda r: (-r["time_s"], r["route"]))
    return {
        "series": {
            "t": window.times_ms(),
            "rps": [round(n / window.step_s, 4) for n in requests],
            "error_rate": [round(e / n, 4) if n else None for e, n in zip(errors, requests, strict=True)],
            **{f"p{q}_ms": [p.value(q / 100, scale) for p in per_step] for q in (50, 95, 99)},
        },
        "routes": table[:ROWS_LISTED],
    }


def _task_key(one: Stepped) -> tuple[str, str, str]:
    return (
        one.service,
        str(one.attributes.get("celery.task_name", "")),
        str(one.attributes.get("messaging.destination.name", "")),
    )


def _step_p95(streams: list[Stepped], steps: int, scale: float) -> list[float | None]:
    per_step = [_Percentiles() for _ in range(steps)]
    for one in streams:
        for index in range(steps):
            per_step[index].add(one.bounds, one.counts[index])
    return [p.value(0.95, scale) for p in per_step]


def _celery(by_name: dict[str, list[Stepped]], window: Window) -> dict[str, Any]:
    steps = window.steps
    outcomes = {name: [0.0] * steps for name in ("success", "failure", "retry", "killed", "revoked")}
    tasks: dict[tuple, dict[str, Any]] = {}

    def task(one: Stepped) -> dict[str, Any]:
        service, name, queue = _task_key(one)
        return tasks.setdefault(
            (service, name, queue),
            {"service": service, "task": name, "queue": queue, "runs": 0.0,
             **dict.fromkeys(outcomes, 0.0), "time_s": 0.0, "duration": _Percentiles(), "queued": _Percentiles(),
             "duration_series": [], "queue_series": [], "scale": _to_ms(one.unit), "queue_scale": 1000.0},
        )  # fmt: skip

    for one in by_name.get(TASK_EXECUTIONS, []):
        outcome = STATES.get(str(one.attributes.get("celery.state", "")).upper())
        entry = task(one)
        for index, value in enumerate(one.values):
            if value:
                entry["runs"] += value
                if outcome:
                    outcomes[outcome][index] += value
                    entry[outcome] += value
    # messaging.process.duration is also recorded by other messaging instrumentations (django.tasks:
    # messaging.system=django_tasks, django.task.name): only Celery's runs, which name their task, count here.
    for one in by_name.get(TASK_DURATION, []):
        if "celery.task_name" not in one.attributes:
            continue
        entry = task(one)
        entry["time_s"] += one.total_sum() * _to_ms(one.unit) / 1000
        entry["duration"].add(one.bounds, one.window_counts())
        entry["duration_series"].append(one)
        if str(one.attributes.get("error.type", "")) in KILLED_ERRORS:
            for index in range(steps):
                outcomes["killed"][index] += one.count[index]
                outcomes["failure"][index] = max(0.0, outcomes["failure"][index] - one.count[index])
            entry["killed"] += one.total_count()
            entry["failure"] = max(0.0, entry["failure"] - one.total_count())
    for one in by_name.get(TASK_QUEUE, []):
        entry = task(one)
        entry["queue_scale"] = _to_ms(one.unit)
        entry["queued"].add(one.bounds, one.window_counts())
        entry["queue_series"].append(one)
    workers: dict[str, dict[str, Any]] = {}
    for metric, label in WORKER_GAUGES.items():
        for one in by_name.get(metric, []):
            known = [v for v in one.values if v is not None]
            worker = workers.setdefault(one.service, {"service": one.service, **dict.fromkeys(WORKER_GAUGES.values())})
            if known:
                worker[label] = (worker[label] or 0) + known[-1]
    table = []
    for entry in tasks.values():
        if not entry["runs"] and not entry["time_s"]:
            continue
        table.append(
            {
                "service": entry["service"],
                "task": entry["task"],
                "queue": entry["queue"],
                "rate": round(entry["runs"] / window.since_s, 4),
                "runs": round(entry["runs"]),
                **{name: round(entry[name]) for name in outcomes},
                "p95_ms": entry["duration"].value(0.95, entry["scale"]),
                "queue_p95_ms": entry["queued"].value(0.95, entry["queue_scale"]),
                "time_s": round(entry["time_s"], 6),
                "_entry": entry,
            }
        )
    table.sort(key=lambda r: (-r["time_s"], -r["runs"], r["task"]))
    # Per-step percentiles only for the tasks charted: the table can hold thousands of tasks.
    task_series = [
        {
            "service": row["service"],
            "task": row["task"],
            "queue": row["queue"],
            "t": window.times_ms(),
            "p95_ms": _step_p95(row["_entry"]["duration_series"], steps, row["_entry"]["scale"]),
            "queue_p95_ms": _step_p95(row["_entry"]["queue_series"], steps, row["_entry"]["queue_scale"]),
        }
        for row in table[:TASKS_CHARTED]
    ]
    for row in table:
        del row["_entry"]
    return {
        "series": {
            "t": window.times_ms(),
            **{k: [round(v / window.step_s, 4) for v in vs] for k, vs in outcomes.items()},
        },
        "tasks": table[:ROWS_LISTED],
        "workers": sorted(workers.values(), key=lambda w: w["service"]),
        "task_series": task_series,
    }


def overview(store: Store, service: str | None, window: Window) -> dict[str, Any]:
    """``/api/overview``."""
    names = [HTTP_NEW, HTTP_OLD, TASK_DURATION, TASK_QUEUE, TASK_EXECUTIONS, *WORKER_GAUGES]
    by_name: dict[str, list[Stepped]] = {}
    series_rows, rows = store.point_rows(names, service, window.read_from_ns, window.step_ns)
    by_metric: dict[str, list[Any]] = {}
    for row in rows:
        by_metric.setdefault(series_rows[row["series"]]["name"], []).append(row)
    for name, metric_rows in by_metric.items():
        by_name[name] = stepped(series_rows, metric_rows, window)
    try:
        slowest, repeated = store.db_spans(service, window.start_ns)
        db_error = None
    except QueryTooLong as exc:  # a store of millions of spans: the metrics still answer
        slowest, repeated, db_error = [], [], f"{exc}; narrow the window or the service"
    services = sorted({row["service"] for row in series_rows.values()} | set(store.services()))
    return {
        "since_s": window.since_s,
        "step_s": window.step_s,
        "services": services,
        "web": _web(by_name, window),
        "celery": _celery(by_name, window),
        "db": {
            "slowest": [
                {
                    "statement": r["statement"],
                    "service": r["service"],
                    "duration_ms": round(r["duration"] / 1e6, 3),
                    "runs": r["runs"],
                    "trace_id": r["trace_id"],
                }  # fmt: skip
                for r in slowest
            ],
            "n_plus_one": [
                {"statement": r["statement"], "service": r["service"], "count": r["runs"], "trace_id": r["trace_id"]}
                for r in repeated
            ],
            **({"error": db_error} if db_error else {}),
        },
    }
