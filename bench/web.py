"""HTTP throughput, p99 latency and worker memory: gunicorn, 1 sync worker, wrk 2 threads / 8 connections.

Every variant serves the shop's trivial view (``/health/``) and its list view (``/customers/``,
1 + 10 SQL queries) from one gunicorn per round; the variants take turns in a rotating order.
Run alone for a quick look: ``.venv/bin/python bench/web.py [seconds] [variant ...]`` (variant
names as in the table; with ``BENCH_BEFORE_SRC`` also "otel-launch (before)" etc., see _common.py).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from _common import (
    BIN,
    OURS,
    OURS_SAMPLED,
    OURS_UNSAMPLED,
    PLAIN,
    PYTHON,
    SHOP,
    UPSTREAM,
    UPSTREAM_SAMPLED,
    Variant,
    children,
    cpu_seconds,
    free_port,
    memory_kb,
    process,
    rotations,
    run,
    wait_until,
)

VIEWS = {"trivial view": "/health/", "list view (11 SQL queries)": "/customers/"}
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def seed(env: dict[str, str]) -> None:
    """A fresh SQLite shop with 200 orders over 20 customers."""
    run([PYTHON, "manage.py", "migrate", "-v0"], SHOP, env, 120)
    code = (
        "from orders.models import Order; Order.objects.all().delete(); "
        "Order.objects.bulk_create([Order(customer=f'c{i % 20}', total_cents=100 + i) for i in range(200)])"
    )
    run([PYTHON, "manage.py", "shell", "-c", code], SHOP, env, 120)


def wrk(url: str, seconds: float) -> dict[str, float]:
    """Requests per second and p99 latency (seconds) of one wrk run; fails on errors or non-2xx answers."""
    out = run(["wrk", "-t2", "-c8", f"-d{seconds:g}s", "--latency", url], SHOP, {}, seconds + 30)
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"bench: wrk saw errors on {url}:\n{out}")
    value, unit = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)$", out, re.M).groups()
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p99_s": float(value) * UNITS[unit],
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
    }


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def gunicorn(variant: Variant, env: dict[str, str], workdir: Path, limit: float) -> Iterator[tuple[int, int]]:
    """gunicorn with 1 sync worker under ``variant``, answering: (port, worker pid)."""
    port = free_port()
    command = variant.command([str(BIN / "gunicorn"), "shop.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"])
    log = workdir / ("gunicorn-" + re.sub(r"\W+", "_", variant.name) + ".log")
    with process(command, SHOP, {**env, **variant.env}, limit, log) as server:
        if not wait_until(lambda: answers(port), 60, 0.1):
            raise SystemExit(f"bench: gunicorn under {variant.name} did not answer:\n{log.read_text()[-2000:]}")
        (worker,) = children(server.pid)
        yield port, worker


def serve_once(variant: Variant, env: dict[str, str], workdir: Path, seconds: float, receiver) -> dict:
    """One gunicorn under ``variant``: every view measured (with the worker's CPU time a request,
    its export thread included), then the worker's peak RSS and spans delivered."""
    before = receiver.counts["traces"]
    with gunicorn(variant, env, workdir, 600) as (port, worker):
        views = {}
        for view, path in VIEWS.items():
            wrk(f"http://127.0.0.1:{port}{path}", 1)  # warm-up, unmeasured
            cpu = cpu_seconds(worker)
            views[view] = wrk(f"http://127.0.0.1:{port}{path}", seconds)
            views[view]["worker_cpu_us"] = 1e6 * (cpu_seconds(worker) - cpu) / views[view]["requests"]
        peak_mb = memory_kb(worker) / 1024
        # What the resident set is made of at the end: pages of files (shared libraries: one copy in
        # memory for every process that maps them) and anonymous pages (the worker's own objects).
        anon_mb, file_mb = memory_kb(worker, "RssAnon") / 1024, memory_kb(worker, "RssFile") / 1024
    return {
        "views": views,
        "worker_peak_rss_mb": peak_mb,
        "worker_rss_anon_mb": anon_mb,
        "worker_rss_file_mb": file_mb,
        "spans": receiver.counts["traces"] - before,
    }


def memory_over_time(variant: Variant, env: dict[str, str], workdir: Path, seconds: float) -> tuple[list[float], float]:
    """The worker's resident set (MB) every 5 s while wrk drives the trivial view for ``seconds``,
    and the seconds gunicorn took to exit after SIGTERM (its worker flushing what it holds)."""
    with gunicorn(variant, env, workdir, seconds + 120) as (port, worker):
        load = subprocess.Popen(
            ["wrk", "-t2", "-c8", f"-d{seconds:g}s", f"http://127.0.0.1:{port}/health/"],
            stdout=subprocess.DEVNULL,
        )
        samples = []
        try:
            while load.poll() is None:
                samples.append(round(memory_kb(worker, "VmRSS") / 1024, 1))
                wait_until(lambda: load.poll() is not None, 5, 0.1)
        finally:
            load.kill()
            load.wait(10)
        stopping = time.monotonic()
    return samples, time.monotonic() - stopping


def main() -> None:
    from _common import base_env, before_src, collector_down, peers, scratch

    from otel_launch.local.receiver import OTLPReceiver

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    workdir = scratch("web")
    with OTLPReceiver(grpc_port=0, http_port=0, keep=False) as receiver:
        others = peers(receiver.http_endpoint)
        ours = [OURS, OURS_SAMPLED, OURS_UNSAMPLED, collector_down(OURS)]
        chosen = {v.name: v for v in (PLAIN, UPSTREAM, UPSTREAM_SAMPLED, *ours, *before_src(ours), *others)}
        variants = [chosen[name] for name in sys.argv[2:]] or [PLAIN, UPSTREAM, OURS, *others]
        env = base_env(receiver.grpc_endpoint, workdir)
        seed(env)
        for order in rotations(variants, 1):
            for variant in order:
                result = serve_once(variant, env, workdir, seconds, receiver)
                print(variant.name, result)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
