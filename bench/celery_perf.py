"""Instructions a Celery task costs a real prefork worker, its main process and its pool children
apart, counted by callgrind (``valgrind --tool=callgrind``, which follows the pool's forks).

Throughput and CPU time move with the neighbours' load on a shared machine; instruction counts
do not. Same set-up as bench/tasks.py (queue filled first by a plain process, prefork x2,
Redis), run twice, with ``tasks`` and with a tenth of them: the difference over the difference
in tasks is the cost a task, start-up and shutdown cancelled out.

``.venv/bin/python bench/celery_perf.py [tasks] [variant ...]`` (variant names as in tasks.py,
default 1000 tasks; each run takes a minute or two under valgrind).
"""

from __future__ import annotations

import re
import shutil
import signal
import sys

from _common import BIN, PYTHON, SHOP, process, run, wait_until
from tasks import OURS, OURS_SAMPLED, OURS_UNSAMPLED, PLAIN, UPSTREAM, UPSTREAM_SAMPLED, before_variants, redis


def consume(variant, env, workdir, count: int, queue: str) -> tuple[float, float]:
    """(main process, pool children) instructions for draining ``count`` ticks, start-up included."""
    tick_file = workdir / f"ticks-{queue}"
    env = {**env, "SHOP_QUEUE": queue, "SHOP_TICKS": str(tick_file)}
    fill = f"from orders.tasks import tick\nfor _ in range({count}): tick.delay()"
    run([PYTHON, "manage.py", "shell", "-c", fill], SHOP, env, 120)
    out = workdir / f"cg-{queue}"
    out.mkdir()
    command = [str(BIN / "celery"), "-A", "shop", "worker", "-P", "prefork", "-c", "2", "-l", "warning"]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    valgrind = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out}/%p"]
    log = workdir / f"worker-{queue}.log"

    def done() -> int:
        return len(tick_file.read_bytes().splitlines()) if tick_file.exists() else 0

    with process(valgrind + variant.command(command), SHOP, {**env, **variant.env}, 1200, log) as worker:
        if not wait_until(lambda: done() >= count, 1100, 0.2):
            raise SystemExit(f"bench: {variant.name} did not run {count} tasks:\n{log.read_text()[-2000:]}")
        worker.send_signal(signal.SIGTERM)
        worker.wait(300)
    main = children = 0.0
    for path in out.iterdir():
        found = re.search(r"^summary: (\d+)", path.read_text(errors="replace"), re.M)
        if found:
            if path.name == str(worker.pid):
                main = float(found.group(1))
            else:
                children += float(found.group(1))
    return main, children


def main() -> None:
    from _common import base_env, scratch

    from otel_launch.local.receiver import OTLPReceiver

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    known = (PLAIN, UPSTREAM, OURS, UPSTREAM_SAMPLED, OURS_SAMPLED, OURS_UNSAMPLED, *before_variants())
    chosen = {v.name: v for v in known}
    variants = [chosen[name] for name in sys.argv[2:]] or [PLAIN, OURS, OURS_SAMPLED]
    workdir = scratch("perf")
    with OTLPReceiver(grpc_port=0, http_port=None, keep=False) as receiver, redis(workdir) as (url, which):
        print("redis:", which, flush=True)
        env = {**base_env(receiver.grpc_endpoint, workdir), "SHOP_BROKER_URL": url}
        run([PYTHON, "manage.py", "migrate", "-v0"], SHOP, env, 120)
        for number, variant in enumerate(variants):
            queue = f"perf-{number}-{variant.name.replace(' ', '-').replace('%', '')}"
            few = consume(variant, env, workdir, count // 10, queue + "-few")
            many = consume(variant, env, workdir, count, queue)
            per_task = [(b - a) / (count - count // 10) / 1e3 for a, b in zip(few, many, strict=True)]
            figures = {"main_k": round(per_task[0]), "children_k": round(per_task[1]), "total_k": round(sum(per_task))}
            print(variant.name, "instructions a task (thousands):", figures, flush=True)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
