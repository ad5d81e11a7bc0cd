"""The recycled prefork worker (``--max-tasks-per-child 1``) run N times on a loaded machine.

Not part of the suite (tests/e2e/test_celery.py keeps one run of 8 tasks): this repeats a run of
64 tasks (``place_orders 32``: fulfil + notify each) while one busy loop per CPU keeps the
machine busy, and counts, per run, the run spans against the executions the tasks logged, and
the "gave up flushing" lines of the worker's output (a run that lost or gave up prints those lines
and keeps the worker's output in a directory it names). Each pool child runs one task, flushes at
its exit (``worker_process_shutdown``) and leaves through ``os._exit``. The export settings are
the e2e suite's (spans batched for 5 s, metrics every 10 minutes), unless asked otherwise:

    .venv/bin/python tests/e2e/recycled_under_load.py [RUNS] [ORDERS]
    RECYCLED_METRIC_INTERVAL=500 .venv/bin/python tests/e2e/recycled_under_load.py 20
        (the worker's main process collects and exports its metrics every 500 ms: children are
        forked during its collections and exports)
    RECYCLED_PROTOCOL=http/protobuf ...  (OTLP/HTTP instead of gRPC)

Prints one line a run and a summary; exit status 1 if any run lost a span or gave up flushing.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from examples.redis_server import redis_for_run  # noqa: E402
from otel_launch.local.receiver import OTLPReceiver  # noqa: E402
from tests.e2e.shop import SHOP, Shop  # noqa: E402


def busy(stop: multiprocessing.Event) -> None:
    while not stop.is_set():
        sum(range(10_000))


def one_run(template: Path, redis_url: str, orders: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="recycled-"))
    shutil.copy(template, workdir / "shop.sqlite3")
    with OTLPReceiver() as receiver:
        shop = Shop(workdir, receiver, "redis", redis_url, None)
        try:
            options = ("--pool", "prefork", "--concurrency", "2", "--max-tasks-per-child", "1")
            export = {}
            if os.environ.get("RECYCLED_METRIC_INTERVAL"):  # e.g. 500 ms: forks land in the parent's collections
                export["OTEL_METRIC_EXPORT_INTERVAL"] = os.environ["RECYCLED_METRIC_INTERVAL"]
            if os.environ.get("RECYCLED_PROTOCOL") == "http/protobuf":  # the same run without gRPC
                export.update(
                    OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint
                )
            worker = shop.worker(*options, **export)
            status, output = shop.manage("place_orders", str(orders), service=None)
            assert status == 0, output
            deadline = time.monotonic() + 300
            while len(shop.executions()) < 2 * orders and time.monotonic() < deadline:
                time.sleep(0.2)
            started = time.monotonic()
            stopped = shop.stop(worker, signal.SIGTERM, timeout=120)
            executions = shop.executions()
            ids = {e["id"] for e in executions}
            receiver.wait_for(lambda r: ids <= {s.attributes.get("messaging.message.id") for s in r.spans}, 10)
            runs = [s for s in receiver.spans if s.name.startswith("run/")]
            output = shop.output(worker)
            result = {
                "executions": len(executions),
                "run spans": len({s.attributes.get("messaging.message.id") for s in runs} & ids),
                "gave up": output.count("gave up flushing"),
                "exit": stopped,
                "stop s": round(time.monotonic() - started, 1),
                "children": len({e["pid"] for e in executions}),
            }
            if result["gave up"] or result["run spans"] < len(executions) or stopped != 0:
                kept = Path(tempfile.mkdtemp(prefix="recycled-kept-")) / "worker.log"
                shutil.copy(workdir / "worker.log", kept)  # the worker's whole output, for the lines around it
                result["gave up lines"] = [line for line in output.splitlines() if "gave up flushing" in line]
                result["worker log"] = str(kept)
            return result
        finally:
            shop.kill_all()
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    orders = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    template = Path(tempfile.mkdtemp(prefix="recycled-db-")) / "shop.sqlite3"
    env = {**os.environ, "SHOP_DB": str(template), "SHOP_BROKER_URL": "filesystem://"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=SHOP, env=env, check=True, timeout=120)
    stop = multiprocessing.Event()
    loaders = [multiprocessing.Process(target=busy, args=(stop,), daemon=True) for _ in range(os.cpu_count() or 2)]
    for loader in loaders:
        loader.start()
    print(f"load: {len(loaders)} busy loops (one per CPU), load average {os.getloadavg()[0]:.1f} at start", flush=True)
    bad = 0
    try:
        with redis_for_run(Path(tempfile.mkdtemp(prefix="recycled-redis-"))) as redis:
            if redis.url is None:
                raise SystemExit(f"no Redis: {redis.description}")
            for number in range(1, runs + 1):
                result = one_run(template, redis.url, orders)
                lost = result["executions"] - result["run spans"]
                bad += bool(lost or result["gave up"] or result["exit"] != 0)
                print(f"run {number}: {result}, lost {lost}, load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        stop.set()
        for loader in loaders:
            loader.join(5)
    print(f"{runs - bad} of {runs} runs lost nothing and never gave up flushing", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
