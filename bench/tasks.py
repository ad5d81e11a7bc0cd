"""Celery throughput and pool-child memory: 2000 trivial tasks, prefork pool of 2, Redis broker.

The queue is filled first (by a plain process, so every variant consumes the same messages), then
the worker starts. Each task appends its end time to a file; throughput is the tasks between the
first and the last end time over that span, so worker start-up is not counted.
Run alone: ``.venv/bin/python bench/tasks.py [tasks] [variant ...]`` (variants: plain,
otel-launch, opentelemetry-instrument, "otel-launch 10%", "otel-launch 0%", "opentelemetry-instrument 10%",
with ``BENCH_BEFORE_SRC`` "otel-launch (before)" etc. (see _common.py), and with
``BENCH_BEFORE_VENV=<venv>`` "before" and "before 10%": that venv's otel-launch and Celery).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
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
    before_src,
    children,
    cpu_seconds,
    memory_kb,
    process,
    run,
    wait_until,
)
from redis_server import redis_for_run  # noqa: E402


class OtherVenv(Variant):
    """A variant run from another virtual environment (``BENCH_BEFORE_VENV``: an install of an older
    otel-launch), so that one run compares before and after on the same machine load."""

    def command(self, command: list[str]) -> list[str]:
        return super().command([c.replace(str(BIN), self.env["BENCH_BIN"]) for c in command])


def before_variants() -> list[Variant]:
    venv = os.environ.get("BENCH_BEFORE_VENV")
    if not venv:
        return []
    bin_dir = str(Path(venv) / "bin")
    prefix = (str(Path(bin_dir) / "otel-launch"),)
    return [
        OtherVenv("before", prefix, {"BENCH_BIN": bin_dir}),
        OtherVenv("before 10%", prefix, {"BENCH_BIN": bin_dir, **OURS_SAMPLED.env}),
    ]


@contextlib.contextmanager
def redis(workdir: Path) -> Iterator[tuple[str | None, str]]:
    """(URL, which server): the one Redis choice of ``make test`` and ``make demo`` (a private
    redis-server on a free port; a shared one only when OTEL_LAUNCH_TEST_REDIS_URL names it)."""
    with redis_for_run(workdir) as chosen:
        which = chosen.description if chosen.url else f"{chosen.description}: Celery figures skipped"
        yield chosen.url, which


def ticks(path: Path) -> list[float]:
    return [float(line) for line in path.read_text().split()] if path.exists() else []


def consume_once(variant: Variant, env: dict[str, str], workdir: Path, count: int, receiver, queue: str) -> dict:
    """Fill the queue with ``count`` ticks, then let a prefork x2 worker under ``variant`` drain it."""
    tick_file = workdir / f"ticks-{queue}"
    env = {**env, "SHOP_QUEUE": queue, "SHOP_TICKS": str(tick_file)}
    fill = f"from orders.tasks import tick\nfor _ in range({count}): tick.delay()"
    run([PYTHON, "manage.py", "shell", "-c", fill], SHOP, env, 120)
    command = [str(BIN / "celery"), "-A", "shop", "worker", "-P", "prefork", "-c", "2", "-l", "warning"]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    before = receiver.counts["traces"]
    log = workdir / f"worker-{queue}.log"
    with process(variant.command(command), SHOP, {**env, **variant.env}, 300, log) as worker:

        def done() -> int:
            return len(tick_file.read_bytes().splitlines()) if tick_file.exists() else 0

        def wait_for(goal: int) -> None:
            if not wait_until(lambda: done() >= goal, 180, 0.05):
                raise SystemExit(f"bench: {variant.name} worker did not run {goal} tasks:\n{log.read_text()[-2000:]}")

        def cpu() -> float:  # the consumer and its pool children, export threads included
            return sum(cpu_seconds(pid) for pid in [worker.pid, *children(worker.pid)])

        # CPU is counted from the tenth of the tasks on: start-up and pool forks are behind by then.
        wait_for(count // 10)
        first_done, first_cpu, first_main = done(), cpu(), cpu_seconds(worker.pid)
        wait_for(count)
        cpu_per_task_us = 1e6 * (cpu() - first_cpu) / (done() - first_done)
        main_per_task_us = 1e6 * (cpu_seconds(worker.pid) - first_main) / (done() - first_done)
        peaks = [memory_kb(child) / 1024 for child in children(worker.pid)]
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    ends = sorted(ticks(tick_file))
    return {
        "tasks_per_s": (len(ends) - 1) / (ends[-1] - ends[0]),
        "worker_cpu_us": cpu_per_task_us,
        "main_process_cpu_us": main_per_task_us,  # the consumer alone (the rest is the pool children's)
        "child_peak_rss_mb": max(peaks),
        "spans": receiver.counts["traces"] - before,
    }


def main() -> None:
    from _common import base_env, rotations, scratch

    from otel_launch.local.receiver import OTLPReceiver

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    ours = [OURS, OURS_SAMPLED, OURS_UNSAMPLED]
    chosen = {v.name: v for v in (PLAIN, UPSTREAM, UPSTREAM_SAMPLED, *ours, *before_src(ours), *before_variants())}
    variants = [chosen[name] for name in sys.argv[2:]] or list(chosen.values())
    workdir = scratch("tasks")
    with OTLPReceiver(grpc_port=0, http_port=None, keep=False) as receiver, redis(workdir) as (url, which):
        print("redis:", which)
        env = {**base_env(receiver.grpc_endpoint, workdir), "SHOP_BROKER_URL": url}
        run([PYTHON, "manage.py", "migrate", "-v0"], SHOP, env, 120)
        for number, order in enumerate(rotations(variants, 1)):
            for variant in order:
                queue = f"bench-{number}-{variant.name.replace(' ', '-')}"
                print(variant.name, consume_once(variant, env, workdir, count, receiver, queue), flush=True)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
