"""Beat that runs late or not at all, what each task costs, and every process's runtime metrics: the
example shop on real gunicorn, a real prefork worker, real ``celery beat`` and a real broker."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.shop import BIN, named, service, telemetry_noise
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024
RUNTIME_METRICS = (
    "process.cpu.time",
    "process.memory.usage",
    "process.memory.virtual",
    "process.thread.count",
    "cpython.gc.collections",
)


def points(shop, metric: str, **attributes) -> list:
    return [
        p
        for p in shop.receiver.points
        if p.metric == metric and all(p.attributes.get(k) == v for k, v in attributes.items())
    ]


def beat(shop, name: str, **env: str):
    command = [str(BIN / "celery"), "-A", "shop", "beat", "-l", "info", "-s", str(shop.workdir / "schedule")]
    # The gauges every half second: what a backend would see while beat runs, and stop seeing when it does not.
    return shop.start(name, command, service="shop-beat", SHOP_BEAT_EVERY="2", OTEL_METRIC_EXPORT_INTERVAL="500", **env)


def test_a_late_publish_after_beat_was_down_and_the_entry_gone_stale(shop):
    ticks = shop.workdir / "ticks"
    worker = shop.worker("--pool", "prefork", "--concurrency", "1", SHOP_TICKS=str(ticks))
    first = beat(shop, "beat-1")

    def published() -> list[float]:
        return [p.value for p in points(shop, "celery.beat.entry.published", **{"celery.beat.entry": "tick"})]

    def due() -> list[float]:
        return [p.value for p in points(shop, "celery.beat.entry.due", **{"celery.beat.entry": "tick"})]

    wait_until(lambda: len(published()) >= 2 and len(ticks.read_text().split()) >= 2, 60, "2 ticks run, gauge seen")
    assert shop.stop(first) == 0
    stopped = time.time()
    last_published, last_due = max(published()), max(due())
    assert stopped - 2.5 < last_published <= stopped
    assert last_published < last_due <= last_published + 2.5  # next due one interval after the last publish

    # Beat down: nothing reports, and the alert's condition (docs/django-celery.md) becomes true: the
    # last due time reported passes, and the last publish is older than twice the interval.
    wait_until(lambda: time.time() - stopped >= 5, 10, "beat down for 5 s", interval=0.2)
    assert max(published()) == last_published and max(due()) == last_due
    assert time.time() - last_due > 2 and time.time() - last_published > 2 * 2

    # Restarted with its runtime metrics turned off (OTEL_LAUNCH_RUNTIME_METRICS): the beat metrics stay.
    second = beat(shop, "beat-2", OTEL_LAUNCH_RUNTIME_METRICS="false")
    wait_until(lambda: max(published()) > stopped + 5, 60, "a publish by the restarted beat")
    wait_until(lambda: len(ticks.read_text().split()) >= 3, 60, "the late tick run")
    assert shop.stop(second) == 0
    assert shop.stop(worker) == 0

    # The publish after the restart: due while beat was down, so it came at least 5 - 2 s late.
    late = [
        s
        for s in named(shop.receiver, "apply_async/orders.tasks.tick")
        if s.attributes.get("celery.beat.lateness", 0) >= 2.5
    ]
    assert late and all(s.start_ns / 1e9 > stopped + 5 for s in late)
    assert all(s.attributes["celery.beat.entry"] == "tick" for s in named(shop.receiver, "apply_async/orders."))
    lateness = points(shop, "celery.beat.entry.lateness", **{"celery.beat.entry": "tick"})
    assert lateness and max(p.max or 0 for p in lateness) >= 2.5
    assert {p.attributes["celery.task_name"] for p in lateness} == {"orders.tasks.tick"}
    # Each run span names the entry that sent it.
    runs = named(shop.receiver, "run/orders.tasks.tick")
    assert len(runs) >= 3 and {r.attributes.get("celery.beat.entry") for r in runs} == {"tick"}
    # Beat's own runtime metrics, from the first beat only.
    for metric in RUNTIME_METRICS:
        pids = {p.resource.get("process.pid") for p in shop.receiver.points if p.metric == metric}
        assert first.pid in pids and second.pid not in pids, metric
    assert second.pid in {p.resource.get("process.pid") for p in lateness}
    assert all(telemetry_noise(shop.output(p)) == [] for p in shop.processes)


def test_what_each_task_costs_and_every_process_reports_its_runtime(shop):
    web = shop.gunicorn("-w", "1")
    worker = shop.worker("--pool", "prefork", "--concurrency", "2")
    status, body = shop.request(web.port, "POST", "/reports/", {"megabytes": "50", "seconds": "0.5"})
    assert status == 202, body
    sent = json.loads(body)
    shop.wait_for_executions(2)
    assert shop.stop(worker) == 0
    assert shop.stop(web) == 0

    runs = {s.attributes.get("messaging.message.id"): s for s in named(shop.receiver, "run/orders.tasks.")}
    report, score = runs[sent["build_report"]], runs[sent["score_orders"]]
    # 50 MB written in a fresh pool child raise its peak resident size by about that much.
    assert 45 * MIB <= report.attributes["celery.task.memory.peak_growth"] <= 80 * MIB
    assert 0.45 <= score.attributes["celery.task.cpu_time"] <= 2.0
    assert score.attributes["celery.task.memory.peak_growth"] < 10 * MIB
    assert report.attributes["celery.task.cpu_time"] < score.attributes["celery.task.cpu_time"]

    for metric in ("celery.task.cpu_time", "celery.task.memory.peak_growth"):
        by_task = {p.attributes["celery.task_name"]: p for p in points(shop, metric)}
        assert set(by_task) == {"orders.tasks.build_report", "orders.tasks.score_orders"}, metric
        assert all(p.count == 1 for p in by_task.values())
    cpu = {p.attributes["celery.task_name"]: p.sum for p in points(shop, "celery.task.cpu_time")}
    assert cpu["orders.tasks.score_orders"] >= 0.45
    memory = {p.attributes["celery.task_name"]: p.sum for p in points(shop, "celery.task.memory.peak_growth")}
    assert memory["orders.tasks.build_report"] >= 45 * MIB

    # Runtime metrics from every kind of process: the gunicorn worker (not only its master), the
    # worker's main process and each pool child that ran a task, each under its own pid.
    child_pids = {e["pid"] for e in shop.executions()}
    for metric in RUNTIME_METRICS:
        by_service: dict[str, set] = {}
        for p in shop.receiver.points:
            if p.metric == metric:
                by_service.setdefault(service(p), set()).add(p.resource.get("process.pid"))
        assert child_pids <= by_service.get("shop-worker", set()), metric
        assert len(by_service["shop-worker"] - child_pids) >= 1, f"{metric}: the worker's main process"
        assert by_service.get("shop-web", set()) - {web.pid}, f"{metric}: a gunicorn worker, not only the master"
    cpu_by_pid = {
        (p.resource.get("process.pid"), p.attributes["cpu.mode"]): p.value
        for p in shop.receiver.points
        if p.metric == "process.cpu.time"
    }
    (score_pid,) = [e["pid"] for e in shop.executions() if e["task"] == "orders.tasks.score_orders"]
    assert cpu_by_pid[(score_pid, "user")] + cpu_by_pid[(score_pid, "system")] >= 0.45
    threads = [p.value for p in shop.receiver.points if p.metric == "process.thread.count"]
    assert threads and min(threads) >= 1
    assert {p.attributes["cpython.gc.generation"] for p in points(shop, "cpython.gc.collections")} == {0, 1, 2}
    assert all(telemetry_noise(shop.output(p)) == [] for p in shop.processes)
