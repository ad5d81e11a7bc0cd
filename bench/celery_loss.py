"""What reaches the collector from a Celery prefork worker, otel-launch against opentelemetry-instrument.

The scenario of issue 3: the example shop's worker (prefork, 2 children; the Redis broker is a
private redis-server on a free port, or the one OTEL_LAUNCH_TEST_REDIS_URL names), a management
command that places N orders (2 tasks each), SIGTERM to the worker right after the last task.
Counted at a real OTLP receiver: task run spans (against the executions the tasks logged
themselves), worker metric points, and root spans the worker sent that are not task runs (broker
bookkeeping). Run: ``.venv/bin/python bench/celery_loss.py [N]``. Not part of ``make test``;
prints a Markdown table.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from otel_launch.local.receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from redis_server import redis_for_run  # noqa: E402

SHOP = ROOT / "examples" / "shop"
BIN = Path(sys.executable).parent


def wait_until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def scenario(tool: str, orders: int, max_tasks: int | None, export_settings: bool, template: Path, broker: str) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="celery-loss-"))
    shutil.copy(template, workdir / "shop.sqlite3")
    task_log = workdir / "tasks.jsonl"
    with OTLPReceiver() as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "DJANGO_SETTINGS_MODULE"}
        env.update(
            SHOP_DB=str(workdir / "shop.sqlite3"),
            SHOP_TASK_LOG=str(task_log),
            SHOP_QUEUE=f"loss-{os.getpid()}-{time.monotonic_ns()}",
            SHOP_BROKER_URL=broker,
            OTEL_SERVICE_NAME="shop-worker",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
            OTEL_LOGS_EXPORTER="none",
        )
        if export_settings:
            env["DJANGO_SETTINGS_MODULE"] = "shop.settings"
        prefix = [str(BIN / "otel-launch")] if tool == "otel-launch" else [str(BIN / "opentelemetry-instrument")]
        worker_args = [str(BIN / "celery"), "-A", "shop", "worker", "-l", "info", "--pool", "prefork"]
        worker_args += ["--concurrency", "2"]
        if max_tasks:
            worker_args += ["--max-tasks-per-child", str(max_tasks)]
        log = open(workdir / "worker.log", "w")  # noqa: SIM115
        worker = subprocess.Popen([*prefix, *worker_args], cwd=SHOP, env=env, stdout=log, stderr=subprocess.STDOUT)
        plain = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
        command = [str(BIN / "python"), "manage.py", "place_orders", str(orders)]
        subprocess.run(command, cwd=SHOP, env=plain, timeout=120, check=True)
        executions = lambda: len(task_log.read_text().splitlines()) if task_log.exists() else 0  # noqa: E731
        finished = wait_until(lambda: executions() >= 2 * orders, 60)
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        runs = [s for s in receiver.spans if s.name.startswith("run/")]
        orphans = [s for s in receiver.spans if not s.parent_span_id and not s.name.startswith("run/")]
        registered = "orders.tasks.fulfil_order" in (workdir / "worker.log").read_text()
        return {
            "tool": tool,
            "settings exported": export_settings,
            "max tasks per child": max_tasks or "-",
            "tasks registered": registered,
            "executions": executions() if finished else f"{executions()} (stalled)",
            "run spans": len(runs),
            "worker metric points": len(receiver.points),
            "root spans not task runs": len(orphans),
        }


def main() -> None:
    orders = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    template = Path(tempfile.mkdtemp(prefix="celery-loss-db-")) / "shop.sqlite3"
    env = {**os.environ, "SHOP_DB": str(template), "SHOP_BROKER_URL": "filesystem://"}
    subprocess.run([str(BIN / "python"), "manage.py", "migrate", "-v0"], cwd=SHOP, env=env, check=True, timeout=120)
    rows = []
    with redis_for_run() as redis:
        if redis.url is None:
            raise SystemExit(f"bench: no Redis for the broker: {redis.description}")
        print(f"redis: {redis.description}", file=sys.stderr)
        for max_tasks in (None, 5):
            for tool in ("opentelemetry-instrument", "otel-launch"):
                rows.append(scenario(tool, orders, max_tasks, True, template, redis.url))
        rows.append(scenario("opentelemetry-instrument", orders, None, False, template, redis.url))
        rows.append(scenario("otel-launch", orders, None, False, template, redis.url))
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(value) for value in row.values()) + " |")
    json.dump(rows, sys.stderr)


if __name__ == "__main__":
    main()
