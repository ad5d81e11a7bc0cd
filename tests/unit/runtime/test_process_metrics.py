"""Process and CPython runtime metrics (process_metrics.py): the conventions' names, read at collection,
the process's own figures in a forked child, and off when the setting says so."""

from __future__ import annotations

import gc
import json
import os

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_launch._runtime import process_metrics


def collected(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict, float]]]:
    found: dict[str, list[tuple[dict, float]]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    found.setdefault(metric.name, []).append((dict(point.attributes), point.value))
    return found


def provider_with_reader() -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader]), reader


def test_the_conventions_names_with_this_process_figures(monkeypatch):
    monkeypatch.delenv("OTEL_LAUNCH_RUNTIME_METRICS", raising=False)
    provider, reader = provider_with_reader()
    process_metrics.observe(provider, while_global=False)  # not the global provider here
    process_metrics.observe(provider)  # once per provider: no duplicate instruments
    gc.collect()
    found = collected(reader)
    assert set(found) == {
        "process.cpu.time",
        "process.memory.usage",
        "process.memory.virtual",
        "process.thread.count",
        "cpython.gc.collections",
        "cpython.gc.collected_objects",
        "cpython.gc.uncollectable_objects",
    }
    times = os.times()
    cpu = {attributes["cpu.mode"]: value for attributes, value in found["process.cpu.time"]}
    assert set(cpu) == {"user", "system"} and 0 < cpu["user"] <= times.user
    ((_, rss),) = found["process.memory.usage"]
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    assert abs(rss - int(fields["VmRSS"].split()[0]) * 1024) < 32 * 1024 * 1024
    assert found["process.thread.count"] == [({}, int(fields["Threads"]))]
    collections = {attributes["cpython.gc.generation"]: value for attributes, value in found["cpython.gc.collections"]}
    assert set(collections) == {0, 1, 2} and collections[2] >= 1
    provider.shutdown()


def test_a_forked_child_reports_its_own_process():
    provider, reader = provider_with_reader()
    process_metrics.observe(provider, while_global=False)
    parent_cpu = sum(value for _, value in collected(reader)["process.cpu.time"])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own CPU time (from zero) and collections (from the fork)
        try:
            found = collected(reader)
            cpu = sum(value for _, value in found["process.cpu.time"])
            gen2 = {a["cpython.gc.generation"]: v for a, v in found["cpython.gc.collections"]}[2]
            os.write(write, json.dumps({"cpu": cpu, "gen2": gen2}).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert child["cpu"] < parent_cpu
    assert child["gen2"] == 0
    provider.shutdown()


def test_off(monkeypatch):
    monkeypatch.setenv("OTEL_LAUNCH_RUNTIME_METRICS", "false")
    provider, reader = provider_with_reader()
    process_metrics.observe(provider, while_global=False)
    assert collected(reader) == {}
    provider.shutdown()
