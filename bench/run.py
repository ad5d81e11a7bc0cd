"""``make bench``: the whole comparison on the example shop, in one run.

plain / opentelemetry-instrument / otel-launch (and both at 10% sampling, otel-launch with no
trace sampled, and otel-launch with its collector down, over gRPC and over HTTP), the peers,
alternated in a rotating order, every measured figure repeated, with the package's OTLP receiver
consuming the export (counting, not decoding). Writes bench/results.json and bench/results.md,
and puts the table in docs/cost.md between its bench-results markers (``put_table``), with
otel-launch held against its targets (``TARGETS``). Not part of ``make test``; about 10 minutes on 2 cores.
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
    OURS_UNSAMPLED,
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
from otel_launch._core.settings import read_setting
from otel_launch.local.receiver import OTLPReceiver

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

        others = peers(receiver.http_endpoint)
        down_http = collector_down(others[0])  # otel-launch over OTLP/HTTP, to a port nothing listens on
        served = repeated(
            [PLAIN, UPSTREAM, OURS, UPSTREAM_SAMPLED, OURS_SAMPLED, OURS_UNSAMPLED, down, down_http, *others],
            lambda variant: web.serve_once(variant, env, workdir, SECONDS, receiver),
        )
        print("web:", json.dumps(served), flush=True)
        memory, shutdown_s = web.memory_over_time(down, env, workdir, MEMORY_SECONDS)
        print("memory over time, collector down:", memory, "shutdown:", shutdown_s, flush=True)

        consumed = {}
        if redis:
            queue = iter(range(10**6))
            consumed = repeated(
                [PLAIN, UPSTREAM, OURS, UPSTREAM_SAMPLED, OURS_SAMPLED, OURS_UNSAMPLED, down],
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
            "peak RSS (VmHWM) is the largest seen, and the RSS at the end is split into its anonymous "
            "pages (RssAnon: the process's own) and its pages of files (RssFile: shared libraries, one copy "
            f"in memory for every process that maps them); memory over {MEMORY_SECONDS} s is "
            "VmRSS every 5 s of the worker under otel-launch with the collector down, then the time gunicorn "
            "took to exit after SIGTERM; worker CPU a request or task: all the worker's threads (export included), "
            "over the measured requests or tasks"
        ),
        "startup_s": starts,
        "web": served,
        "tasks": consumed,
        "memory_collector_down_mb": memory,
        "shutdown_collector_down_s": shutdown_s,
    }
    report["summary"], report["targets"] = summarize(report, down.name, down_http.name)
    (OUT / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (OUT / "results.md").write_text(table)
    put_table(COST_PAGE, table)
    print(table)
    print(f"wrote {OUT / 'results.json'}, {OUT / 'results.md'} and the table in {COST_PAGE} in {report['minutes']} min")


# The documentation's page on cost holds the latest table between these markers.
COST_PAGE = ROOT / "docs" / "cost.md"
BENCH_BLOCK = re.compile(r"<!-- bench-results:start -->.*?<!-- bench-results:end -->", re.S)


def put_table(page: Path, table: str) -> None:
    """Replace the table between the bench-results markers of ``page``; a page without them is an
    error (the run's table would otherwise be lost without a word)."""
    text = page.read_text(encoding="utf-8")
    block = f"<!-- bench-results:start -->\n{table}<!-- bench-results:end -->"
    updated, found = BENCH_BLOCK.subn(lambda _: block, text)
    if found != 1:
        raise ValueError(f"{page}: expected one <!-- bench-results:start --> ... end block, found {found}")
    page.write_text(updated, encoding="utf-8")


# otel-launch's targets (issue 24): throughput ratios to plain at 100% sampling, p99 ratios to
# plain, memory added, start-up added, unsampled cost, 10% sampling and collector-down ratios.
TARGETS = {
    "python -c pass added (ms)": 25,
    "manage.py check added / upstream's": 0.33,
    "throughput": {"trivial view": 0.75, "list view (11 SQL queries)": 0.8, "Celery": 0.85},
    "p99 / plain": 1.5,
    "gunicorn worker RSS added (MB)": 20,
    "prefork child RSS added (MB)": 25,
    "unsampled worker CPU added (us)": 15,
    "10% sampling throughput": 0.95,
    "collector down / up": 0.95,
    "collector down RSS growth (MB)": 2,
    "collector down shutdown margin (s)": 1,
}
# The peers a p99 is held against: every other tool, at 100% sampling.
P99_PEERS = (
    "opentelemetry-instrument",
    "opentelemetry-instrument, http",
    "ddtrace-run, http",
    "newrelic (developer mode)",
)


def summarize(report: dict, down: str, down_http: str | None = None) -> tuple[list[dict], list[dict]]:
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
        cpu = row(
            f"{view}, worker CPU a request",
            "us",
            {n: median([r["views"][view]["worker_cpu_us"] for r in rs]) for n, rs in runs.items()},
            False,
        )
        per_view[view] = {"rps": rps, "p99": p99, "cpu": cpu}
    worker_rss = row(
        "gunicorn worker, peak RSS",
        "MB",
        {n: max(r["worker_peak_rss_mb"] for r in rs) for n, rs in report["web"].items()},
        False,
    )
    for part, key in (
        ("anonymous (its own)", "worker_rss_anon_mb"),
        ("of files (shared libraries)", "worker_rss_file_mb"),
    ):
        row(
            f"gunicorn worker, RSS {part} at the end",
            "MB",
            {n: median([r[key] for r in rs]) for n, rs in report["web"].items() if all(key in r for r in rs)},
            False,
        )
    tasks_rate: dict[str, float] = {}
    task_cpu: dict[str, float] = {}
    child_rss: dict[str, float] = {}
    if report["tasks"]:
        tasks_rate = row(
            f"{TASKS} Celery tasks, tasks/s",
            "tasks/s",
            {n: median([r["tasks_per_s"] for r in rs]) for n, rs in report["tasks"].items()},
            True,
        )
        task_cpu = row(
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

    goal = TARGETS["python -c pass added (ms)"]
    pass_cost = start["python -c pass"][OURS.name] - start["python -c pass"][PLAIN.name]
    target("`python -c pass` start-up", f"+{pass_cost * 1000:.0f} ms", f"<= +{goal} ms", pass_cost * 1000 <= goal)
    check = start["manage.py check"]
    ours, upstream = check[OURS.name] - check[PLAIN.name], check[UPSTREAM.name] - check[PLAIN.name]
    goal = TARGETS["manage.py check added / upstream's"]
    target("`manage.py check` added time / upstream's", f"{ours / upstream:.2f}", f"<= {goal}", ours <= upstream * goal)
    goals = TARGETS["throughput"]
    for view, figures in per_view.items():
        ratio = figures["rps"][OURS.name] / figures["rps"][PLAIN.name]
        target(f"{view}, throughput", f"{ratio:.2f}x", f">= {goals[view]}x", ratio >= goals[view])
        latency = figures["p99"][OURS.name] / figures["p99"][PLAIN.name]
        goal = TARGETS["p99 / plain"]
        target(f"{view}, p99 latency", f"{latency:.2f}x", f"<= {goal}x", latency <= goal)
        peer_p99 = {name: value for name, value in figures["p99"].items() if name in P99_PEERS}
        if peer_p99:
            best = min(peer_p99, key=peer_p99.get)
            ours_p99 = figures["p99"][OURS.name]
            target(
                f"{view}, p99 latency at or below every peer's",
                f"{ours_p99:.1f} ms (best peer: {best}, {peer_p99[best]:.1f} ms)",
                "<= every peer's",
                ours_p99 <= peer_p99[best],
            )
    throughputs = {view: f["rps"] for view, f in per_view.items()}
    cpus = {view: f["cpu"] for view, f in per_view.items()}
    if tasks_rate:
        ratio = tasks_rate[OURS.name] / tasks_rate[PLAIN.name]
        goal = goals["Celery"]
        target("Celery throughput", f"{ratio:.2f}x", f">= {goal}x", ratio >= goal)
        throughputs["Celery"], cpus["Celery"] = tasks_rate, task_cpu
    memories = {"gunicorn worker": worker_rss}
    if child_rss:
        memories["prefork child"] = child_rss
    for what, figures in memories.items():
        extra = figures[OURS.name] - figures[PLAIN.name]
        goal = TARGETS[f"{what} RSS added (MB)"]
        target(f"{what}, peak RSS", f"+{extra:.1f} MB", f"<= +{goal} MB", extra <= goal)
    goal = TARGETS["unsampled worker CPU added (us)"]
    for what, figures in cpus.items():
        if OURS_UNSAMPLED.name in figures:
            added = figures[OURS_UNSAMPLED.name] - figures[PLAIN.name]
            unit = "a task" if what == "Celery" else "a request"
            label = f"no trace sampled, {what}: worker CPU added {unit}"
            target(label, f"{added:+.0f} us", f"<= +{goal} us", added <= goal)
    goal = TARGETS["10% sampling throughput"]
    for what, figures in throughputs.items():
        ratio = figures[OURS_SAMPLED.name] / figures[PLAIN.name]
        target(f"10% sampling, {what} throughput", f"{ratio:.2f}x", f">= {goal}x", ratio >= goal)
    goal = TARGETS["collector down / up"]
    for what, figures in throughputs.items():
        ratio = figures[down] / figures[OURS.name]
        target(f"collector down, {what} throughput / collector up", f"{ratio:.2f}x", f">= {goal}x", ratio >= goal)
        up_http = down_http.rpartition(", collector down")[0] if down_http else None
        if down_http in figures and up_http in figures:
            ratio = figures[down_http] / figures[up_http]
            target(
                f"collector down (OTLP/HTTP), {what} throughput / collector up",
                f"{ratio:.2f}x",
                f">= {goal}x",
                ratio >= goal,
            )
    samples = report["memory_collector_down_mb"]
    settled = samples[2:] or samples  # from 10 s on: past imports, first requests and a full span queue
    growth = settled[-1] - settled[0]
    goal = TARGETS["collector down RSS growth (MB)"]
    target(
        f"collector down, worker RSS over {MEMORY_SECONDS} s",
        f"{growth:+.1f} MB from 10 s to the end",
        f"flat (<= +{goal} MB)",
        growth <= goal,
    )
    shutdown_s = report.get("shutdown_collector_down_s")
    if shutdown_s is not None:
        flush_bound = read_setting("shutdown_timeout", {})  # the default: the bench's variants set none
        bound = flush_bound + TARGETS["collector down shutdown margin (s)"]
        target(
            "collector down, gunicorn exits after SIGTERM within the flush bound",
            f"{shutdown_s:.1f} s",
            f"<= {bound:g} s (OTEL_LAUNCH_SHUTDOWN_TIMEOUT + 1 s)",
            shutdown_s <= bound,
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
