"""What ``make demo`` runs: the shop app under otel-launch, its traces, metrics and logs in ``otel-launch ui``.

1. ``otel-launch ui`` listens for OTLP on free local ports and serves its page on another.
2. The shop's database is prepared (``manage.py migrate``, telemetry off for this set-up step).
3. ``otel-launch gunicorn shop.wsgi -w 2`` serves the app, and
   ``otel-launch celery -A shop worker --pool prefork --concurrency 2`` runs its tasks; the
   app has no OpenTelemetry code. The broker is a private ``redis-server`` on a free port when
   one is installed (the shared Redis in ``OTEL_LAUNCH_TEST_REDIS_URL`` only when that is set),
   else kombu's filesystem transport: see ``redis_server.py``.
4. A few requests are made (one places an order, which a task fulfils; one is slow, one fails),
   a management command places orders whose refunds fail, the worker and gunicorn are stopped
   with SIGTERM (each flushes its spans, metrics and logs), and once the overview counts them the
   demo prints the URL of the overview (the page to open first), of the order's trace and of the
   logs. The viewer keeps serving until Ctrl-C; ``--non-interactive`` stops it there (for tests).

Every process is bounded in time and stopped by PID.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from redis_server import Redis, RedisUnavailable, free_port, redis_for_run

HERE = Path(__file__).resolve().parent
SHOP = HERE / "shop"
BIN = Path(sys.executable).parent
LAUNCH = str(BIN / "otel-launch")
REFUNDS = 2  # orders placed by a command, each refunded by a task that always fails


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)  # polling with a bound
    raise SystemExit(f"demo: {what} did not happen within {timeout:g}s")


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):
        return False


def request(url: str, data: bytes | None = None) -> int:
    try:
        with urllib.request.urlopen(url, data=data, timeout=15) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def order_trace(api: str) -> str | None:
    """The id of the order's trace once its worker run span is in the viewer."""
    with urllib.request.urlopen(f"{api}/api/traces?q=run/orders.tasks.fulfil_order", timeout=5) as response:
        traces = json.loads(response.read())["traces"]
    found = [t for t in traces if t["root_name"] == "POST /orders/"]
    return found[0]["trace_id"] if found else None


def overview_counts(api: str) -> bool:
    """Whether the overview has the demo's routes and its failed tasks (metrics flushed at exit)."""
    with urllib.request.urlopen(f"{api}/api/overview?since=3600", timeout=5) as response:
        overview = json.loads(response.read())
    routes = {route["route"] for route in overview["web"]["routes"]}
    failed = sum(task["failure"] for task in overview["celery"]["tasks"])
    return {"/orders/", "/slow/"} <= routes and failed >= REFUNDS


def main() -> None:
    interactive = "--non-interactive" not in sys.argv[1:]
    workdir = Path(tempfile.mkdtemp(prefix="otel-launch-demo-"))
    (workdir / "redis").mkdir()
    try:
        with redis_for_run(workdir / "redis") as chosen:
            demo(interactive, workdir, chosen)
    except RedisUnavailable as error:
        print(f"demo: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def demo(interactive: bool, workdir: Path, chosen: Redis) -> None:
    grpc_port, http_port, web_port, ui_port = free_port(), free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["SHOP_DB"] = str(workdir / "shop.sqlite3")
    env["SHOP_TASK_LOG"] = str(workdir / "tasks.jsonl")
    env["SHOP_QUEUE"] = f"demo-{os.getpid()}"
    env["PYTHONUNBUFFERED"] = "1"
    env["OTEL_LOGS_EXPORTER"] = "otlp"  # the app's log records too, each with its trace
    env["SHOP_LOG_DIR"] = str(workdir / "logs")  # the orders app logs at INFO (and to files there)
    (workdir / "logs").mkdir()
    if chosen.url:
        env["SHOP_BROKER_URL"] = chosen.url
        print(f"broker: redis, {chosen.description}")
    else:
        env["SHOP_BROKER_URL"] = "filesystem://"
        env["SHOP_BROKER_DIR"] = str(workdir / "broker")
        (workdir / "broker").mkdir()
        print(f"broker: filesystem:// (redis: {chosen.description})")
    try:
        view(interactive, workdir, env, grpc_port, http_port, web_port, ui_port)
    finally:
        if chosen.url and chosen.shared:  # left as found: the demo's keys all carry its queue name
            import redis

            client = redis.Redis.from_url(chosen.url, socket_timeout=5)
            keys = client.keys(f"*{env['SHOP_QUEUE']}*")
            if keys:
                client.delete(*keys)


def view(
    interactive: bool, workdir: Path, env: dict[str, str], grpc_port: int, http_port: int, web_port: int, ui_port: int
) -> None:
    ui_command = [LAUNCH, "ui", "--port", str(ui_port), "--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    ui_command += ["--db", str(workdir / "traces.sqlite3")]
    print(f"$ otel-launch {' '.join(ui_command[1:])}")
    ui = subprocess.Popen(ui_command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = ui.stdout.readline() if ui.stdout else ""
        if not re.match(r"otel-launch ui: http://", line):
            raise SystemExit(f"demo: otel-launch ui did not start: {line!r}")
        run_shop(env, grpc_port, web_port)
        api = f"http://127.0.0.1:{ui_port}"
        found: list[str] = []
        wait_until(lambda: found.append(order_trace(api) or "") or found[-1], 30, "the order trace in the viewer")
        wait_until(lambda: overview_counts(api), 30, "the requests and tasks in the overview")
        print(f"\nopen the overview (routes, tasks, queries, over time): {api}/overview")
        print(f"the order's trace (web request, task publish, worker run): {api}/trace/{found[-1]}")
        print(f"the app's logs, each linked to its trace: {api}/logs")
        print(f"every trace: {api}/")
        if interactive:
            print("Ctrl-C to stop the viewer")
            ui.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop(ui, signal.SIGINT)


def run_shop(env: dict[str, str], grpc_port: int, web_port: int) -> None:
    web = worker = None
    try:
        print("$ otel-launch python manage.py migrate   (telemetry off for this set-up step)")
        subprocess.run(
            [LAUNCH, str(BIN / "python"), "manage.py", "migrate", "-v0"],
            cwd=SHOP,
            env={**env, "OTEL_SDK_DISABLED": "true"},
            check=True,
            timeout=120,
        )
        command = [
            LAUNCH,
            "--service-name",
            "shop-web",
            "--endpoint",
            f"http://127.0.0.1:{grpc_port}",
            str(BIN / "gunicorn"),
            "shop.wsgi",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{web_port}",
        ]
        print(
            f"$ otel-launch --service-name shop-web --endpoint http://127.0.0.1:{grpc_port} "
            f"gunicorn shop.wsgi -w 2 -b 127.0.0.1:{web_port}"
        )
        web = subprocess.Popen(command, cwd=SHOP, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{grpc_port}"
        worker_command = ["--service-name", "shop-worker", "--endpoint", endpoint, "celery", "-A", "shop", "worker"]
        worker_command += ["--pool", "prefork", "--concurrency", "2"]
        print(f"$ otel-launch {' '.join(worker_command)}")
        worker = subprocess.Popen(
            [LAUNCH, *worker_command[:4], str(BIN / "celery"), *worker_command[5:]],
            cwd=SHOP,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # gunicorn's master accepts before its workers have booted: wait for an answer from the app
        wait_until(lambda: healthy(web_port), 60, "the shop answering /health/")
        for path in ("/orders/", "/orders/3/", "/orders/99/", "/fail/", "/slow/", "/customers/"):
            print(f"GET {path} -> {request(f'http://127.0.0.1:{web_port}{path}')}")
        print(f"POST /orders/ -> {request(f'http://127.0.0.1:{web_port}/orders/', data=b'customer=demo')}")
        print(f"$ otel-launch --service-name shop-command python manage.py place_orders {REFUNDS} --refund")
        subprocess.run(
            [LAUNCH, "--service-name", "shop-command", "--endpoint", endpoint, str(BIN / "python"), "manage.py"]
            + ["place_orders", str(REFUNDS), "--refund"],
            cwd=SHOP,
            env=env,
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
        )
        tasks = Path(env["SHOP_TASK_LOG"])
        runs = 2 + 3 * REFUNDS  # the order's fulfil and notify; each batch order's fulfil, notify and refund
        wait_until(lambda: tasks.exists() and len(tasks.read_text().splitlines()) >= runs, 30, "the tasks run")
        print("stopping the worker and gunicorn with SIGTERM (every process flushes what it holds)")
        stop(worker)
        stop(web)
    finally:
        for process in (web, worker):
            if process is not None:
                stop(process, signal.SIGKILL)


if __name__ == "__main__":
    main()
