"""``make bench``: the whole comparison on the example shop, in one run.

plain / opentelemetry-instrument / otel-launch (and both at 10% sampling, and otel-launch with
its collector down), alternated in a rotating order, every measured figure repeated, with the
package's OTLP receiver consuming the export (counting, not decoding). Writes
bench/results.json and bench/results.md, and puts the table in the README between its
bench-results markers. Not part of ``make test``; about 7 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import startup
import tasks
import web
from _common import (
    OURS,
    OURS_SAMPLED,
    PLAIN,
    ROOT,
    UPSTREAM,
    UPSTREAM_SAMPLED,
    base_env,
    collector_down,
    cpu_times,
    median,
    peers,
    rotations,
    scratch,
)

from otel_launch import __version__
from otel_launch._receiver import OTLPReceiver

REPEATS = int(os.environ.get("BENCH_REPEATS", "2"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))  # per wrk run
TASKS = int(os.environ.get("BENCH_TASKS", "2000"))
MEMORY_SECONDS = float(os.environ.get("BENCH_MEMORY_SECONDS", "60"))
OUT = Path(__file__).resolve().parent


def repeated(variants: list, measure) -> dict[str, list[dict]]:
    """Variant name -> one result per repeat, the variants rotating each repeat."""
    results: dict[str, list[dict]] = {variant.name: [] for variant in variants}
    for order in rotations(variants, REPEATS):
        for variant in order:
            results[variant.name].append(measure(variant))
    return results


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed (apt-get install wrk)")
    began, cpu_before = time.monotonic(), cpu_times()
    workdir = scratch("run")
    down = collector_down(OURS)
    with OTLPReceiver(grpc_port=0, http_port=0, keep=False) as receiver, tasks.redis(workdir) as (redis, which):
        env = base_env(receiver.grpc_endpoint, workdir)
        web.seed(env)
        starts = startup.measure(env, [PLAIN, UPSTREAM, OURS])

        served = repeated(
            [PLAIN, UPSTREAM, OURS, UPSTREAM_SAMPLED, OURS_SAMPLED, down, *peers(receiver.http_endpoint)],
            lambda variant: web.serve_once(variant, env, workdir, SECONDS, receiver),
        )
        print("web:", json.dumps(served), flush=True)
        memory = web.memory_over_time(down, env, workdir, MEMORY_SECONDS)
        print("memory over time, collector down:", memory, flush=True)

        consumed = {}
        if redis:
            queue = iter(range(10**6))
            consumed = repeated(
                [PLAIN, UPSTREAM, OURS, UPSTREAM_SAMPLED, OURS_SAMPLED, down],
                lambda variant: tasks.consume_once(
                    variant, {**env, "SHOP_BROKER_URL": redis}, workdir, TASKS, receiver, f"bench-{next(queue)}"
                ),
            )
            print("tasks:", json.dumps(consumed), flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    cpu_after = cpu_times()
    stolen, total = cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]

    report = {
        "otel_launch_version": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "minutes": round((time.monotonic() - began) / 60, 1),
        "cpu_steal_percent": round(100 * stolen / total, 1) if total else 0.0,
        "method": (
            "Variants rotated every repeat; start-up: medians of "
            f"{', '.join(str(s[3]) for s in startup.SCENARIOS)} runs, {startup.installed()}; "
            f"HTTP: gunicorn 1 sync worker, wrk -t2 -c8, {SECONDS:g} s per view after 1 s of warm-up, "
            f"medians of {REPEATS} servers; Celery: {TASKS} trivial tasks, prefork x2, Redis ({which}), "
            f'medians of {REPEATS} workers; the ", http" variants and the peers export OTLP/HTTP to the same '
            "receiver (ddtrace exports OTLP over HTTP only; newrelic in developer mode sends nothing); "
            f"peak RSS (VmHWM) is the largest seen; memory over {MEMORY_SECONDS} s is "
            "VmRSS every 5 s of the worker under otel-launch with the collector down"
        ),
        "startup_s": starts,
        "web": served,
        "tasks": consumed,
        "memory_collector_down_mb": memory,
    }
    report["summary"], report["targets"] = summarize(report, down.name)
    (OUT / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (OUT / "results.md").write_text(table)
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = f"<!-- bench-results:start -->\n{table}<!-- bench-results:end -->"
    readme.write_text(
        re.sub(r"<!-- bench-results:start -->.*<!-- bench-results:end -->", lambda _: block, text, flags=re.S)
    )
    print(table)
    print(f"wrote {OUT / 'results.json'}, {OUT / 'results.md'} and the README's table in {report['minutes']} min")


def summarize(report: dict, down: str) -> tuple[list[dict], list[dict]]:
    """Rows of figures (one per measurement, a value per variant) and the issue's targets, met or not."""
    rows = []

    def row(name: str, unit: str, values: dict[str, float], higher_is_better: bool | None) -> dict:
        entry = {"measurement": name, "unit": unit, "values": values, "higher_is_better": higher_is_better}
        rows.append(entry)
        return values

    start = {s: row(f"`{s}` start-up", "s", v, False) for s, v in report["startup_s"].items()}
    per_view: dict[str, dict[str, dict[str, float]]] = {}
    for view in web.VIEWS:
        runs = report["web"]
        rps = row(
            f"{view}, req/s",
            "req/s",
            {n: median([r["views"][view]["requests_per_s"] for r in rs]) for n, rs in runs.items()},
            True,
        )
        p99 = row(
            f"{view}, p99 latency",
            "ms",
            {n: 1000 * median([r["views"][view]["p99_s"] for r in rs]) for n, rs in runs.items()},
            False,
        )
        row(
            f"{view}, worker CPU a request",
            "us",
            {n: median([r["views"][view]["worker_cpu_us"] for r in rs]) for n, rs in runs.items()},
            False,
        )
        per_view[view] = {"rps": rps, "p99": p99}
    worker_rss = row(
        "gunicorn worker, peak RSS",
        "MB",
        {n: max(r["worker_peak_rss_mb"] for r in rs) for n, rs in report["web"].items()},
        False,
    )
    tasks_rate: dict[str, float] = {}
    child_rss: dict[str, float] = {}
    if report["tasks"]:
        tasks_rate = row(
            f"{TASKS} Celery tasks, tasks/s",
            "tasks/s",
            {n: median([r["tasks_per_s"] for r in rs]) for n, rs in report["tasks"].items()},
            True,
        )
        row(
            "Celery worker CPU a task",
            "us",
            {n: median([r["worker_cpu_us"] for r in rs]) for n, rs in report["tasks"].items()},
            False,
        )
        child_rss = row(
            "prefork child, peak RSS",
            "MB",
            {n: max(r["child_peak_rss_mb"] for r in rs) for n, rs in report["tasks"].items()},
            False,
        )

    targets = []

    def target(what: str, figure: str, goal: str, met: bool) -> None:
        targets.append({"target": what, "measured": figure, "goal": goal, "met": bool(met)})

    pass_cost = start["python -c pass"][OURS.name] - start["python -c pass"][PLAIN.name]
    target("`python -c pass` start-up", f"+{pass_cost * 1000:.0f} ms", "<= +30 ms", pass_cost <= 0.030)
    check = start["manage.py check"]
    ours, upstream = check[OURS.name] - check[PLAIN.name], check[UPSTREAM.name] - check[PLAIN.name]
    target("`manage.py check` added time / upstream's", f"{ours / upstream:.2f}", "<= 0.33", ours <= upstream / 3)
    goals = {"trivial view": 0.75, "list view (11 SQL queries)": 0.8}
    for view, figures in per_view.items():
        ratio = figures["rps"][OURS.name] / figures["rps"][PLAIN.name]
        target(f"{view}, throughput", f"{ratio:.2f}x", f">= {goals[view]}x", ratio >= goals[view])
        latency = figures["p99"][OURS.name] / figures["p99"][PLAIN.name]
        target(f"{view}, p99 latency", f"{latency:.1f}x", "<= 2x", latency <= 2)
    throughputs = {view: f["rps"] for view, f in per_view.items()}
    if tasks_rate:
        ratio = tasks_rate[OURS.name] / tasks_rate[PLAIN.name]
        target("Celery throughput", f"{ratio:.2f}x", ">= 0.85x", ratio >= 0.85)
        throughputs["Celery"] = tasks_rate
    memories = (
        {"gunicorn worker": worker_rss, "prefork child": child_rss} if child_rss else {"gunicorn worker": worker_rss}
    )
    for what, figures in memories.items():
        extra = figures[OURS.name] - figures[PLAIN.name]
        target(f"{what}, peak RSS", f"+{extra:.1f} MB", "<= +25 MB", extra <= 25)
    for what, figures in throughputs.items():
        ratio = figures[OURS_SAMPLED.name] / figures[PLAIN.name]
        target(f"10% sampling, {what} throughput", f"{ratio:.2f}x", ">= 0.95x", ratio >= 0.95)
    for what, figures in throughputs.items():
        ratio = figures[down] / figures[OURS.name]
        target(f"collector down, {what} throughput / collector up", f"{ratio:.2f}x", ">= 0.95x", ratio >= 0.95)
    samples = report["memory_collector_down_mb"]
    settled = samples[2:] or samples  # from 10 s on: past imports, first requests and a full span queue
    growth = settled[-1] - settled[0]
    target(
        f"collector down, worker RSS over {MEMORY_SECONDS} s",
        f"{growth:+.1f} MB from 10 s to the end",
        "flat (<= +2 MB)",
        growth <= 2,
    )
    return rows, targets


def markdown(report: dict) -> str:
    names = list(report["web"])
    lines = [
        f"Measured with `make bench` on {report['date']} ({report['machine']}, Python {report['python']}), "
        f"all in one run of {report['minutes']} minutes, in which the hypervisor took "
        f"{report.get('cpu_steal_percent', 0)}% of the CPU time (steal). {report['method']}.",
        "",
        "| measurement | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for entry in report["summary"]:
        values, plain = entry["values"], entry["values"].get(PLAIN.name)
        cells = []
        for name in names:
            value = values.get(name)
            if value is None:
                cells.append("")
                continue
            shown = (
                f"{value:.3f} s"
                if entry["unit"] == "s"
                else f"{value:.1f} {entry['unit']}"
                if entry["unit"] in ("MB", "ms")
                else f"{value:.0f} {entry['unit']}"
            )
            if name != PLAIN.name and plain:
                shown += (
                    f" (+{(value - plain) * 1000:.0f} ms)"
                    if entry["unit"] == "s"
                    else f" (+{value - plain:.1f})"
                    if entry["unit"] == "MB"
                    else f" ({value - plain:+.0f} us)"
                    if entry["unit"] == "us"
                    else f" ({value / plain:.2f}x)"
                )
            cells.append(shown)
        lines.append(f"| {entry['measurement']} | " + " | ".join(cells) + " |")
    lines += ["", "| target (otel-launch) | measured | goal | met |", "|---|---|---|---|"]
    for entry in report["targets"]:
        lines.append(
            f"| {entry['target']} | {entry['measured']} | {entry['goal']} | {'yes' if entry['met'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
