"""Process and CPython runtime metrics of every process, read when metrics are collected.

Every process that builds our meter provider (web workers, Celery's worker and pool children,
beat, management commands that record) reports, with the semantic conventions' names (process
and CPython runtime metrics, both "development"):

- ``process.cpu.time`` (counter, s, ``cpu.mode`` ``user`` / ``system``): ``os.times()``;
- ``process.memory.usage`` and ``process.memory.virtual`` (up-down counters, By): resident and
  virtual size, from ``/proc/self/statm`` (Linux; elsewhere the peak resident size from
  ``getrusage`` stands in for the first, and the second is not reported);
- ``process.thread.count`` (up-down counter, ``{thread}``): the OS threads of the process
  (``/proc/self/stat``: C threads such as gRPC's too), else Python's;
- ``cpython.gc.collections``, ``cpython.gc.collected_objects``, ``cpython.gc.uncollectable_objects``
  (counters, ``cpython.gc.generation``): ``gc.get_stats()``.

All are observable instruments: nothing is measured a request or a task, only when the reader
collects (every ``OTEL_METRIC_EXPORT_INTERVAL``, and at exit). The callbacks read the process
they run in, so a forked child (a pool child, a gunicorn worker) that inherited them reports its
own figures, under its own ``process.pid`` and ``service.instance.id``; its CPU time starts at
zero (the kernel's count is per process) and so do its collections (counted from the fork).

Why not ``opentelemetry-instrumentation-system-metrics``: it registers about thirty instruments
by default, host-wide ``system.*`` ones too (every pool child would report the host's network
connections, a scan of every socket), and the deprecated ``process.runtime.*`` duplicates; it
needs psutil; and it reads the ``psutil.Process`` of the PID it was instrumented in, so a child
forked after ``instrument()`` reports its parent. These few stdlib reads give the figures the
conventions name, per process, at no cost between collections. Off with
``OTEL_LAUNCH_RUNTIME_METRICS=false``.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from typing import Any

SCOPE = "otel_launch.runtime"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
PEAK_RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # bytes in a unit of getrusage's ru_maxrss (KiB on Linux)
_observed: list[Any] = []  # providers already given the instruments
_gc_at_fork: list[dict[str, int]] = []  # gc.get_stats() when this process was forked: counted from there


def _forked() -> None:
    _gc_at_fork[:] = [dict(stats) for stats in gc.get_stats()]


os.register_at_fork(after_in_child=_forked)


def observe(provider: Any, while_global: bool = True) -> None:
    """Give a meter provider the process and runtime instruments (once per provider), unless turned off.

    They report while ``provider`` is the global meter provider (``while_global``): a process whose
    app set a provider of its own (in a pool child, say) reports through that one only, since this
    provider's readings would carry a resource the app did not give."""
    from otel_launch._core.settings import read_setting

    if provider in _observed or not read_setting("runtime_metrics", os.environ):
        return
    _observed.append(provider)
    from opentelemetry import metrics
    from opentelemetry.metrics import Observation

    meter = provider.get_meter(SCOPE)

    def while_current(callback: Any) -> list[Any]:
        def guarded(options: Any) -> list[Any]:
            return callback(options) if metrics.get_meter_provider() is provider else []

        return [guarded if while_global else callback]

    def cpu_time(_: Any) -> list[Any]:
        times = os.times()
        return [Observation(times.user, {"cpu.mode": "user"}), Observation(times.system, {"cpu.mode": "system"})]

    def memory(field: int) -> Any:
        def callback(_: Any) -> list[Any]:
            pages = _statm()
            if pages is None:
                return [] if field else [Observation(_peak_rss())]
            return [Observation(pages[field] * _PAGE)]

        return callback

    def threads(_: Any) -> list[Any]:
        return [Observation(_thread_count())]

    def collected(key: str) -> Any:
        def callback(_: Any) -> list[Any]:
            since = _gc_at_fork or [{}] * 3
            return [
                Observation(stats[key] - since[generation].get(key, 0), {"cpython.gc.generation": generation})
                for generation, stats in enumerate(gc.get_stats())
            ]

        return callback

    meter.create_observable_counter(
        "process.cpu.time",
        while_current(cpu_time),
        unit="s",
        description="Total CPU seconds broken down by different states.",
    )
    meter.create_observable_up_down_counter(
        "process.memory.usage", while_current(memory(1)), unit="By", description="The amount of physical memory in use."
    )
    if _statm() is not None:
        meter.create_observable_up_down_counter(
            "process.memory.virtual",
            while_current(memory(0)),
            unit="By",
            description="The amount of committed virtual memory.",
        )
    meter.create_observable_up_down_counter(
        "process.thread.count", while_current(threads), unit="{thread}", description="Process threads count."
    )
    for name, key, unit, description in (
        ("collections", "collections", "{collection}", "The number of times a generation was collected"),
        ("collected_objects", "collected", "{object}", "The total number of objects collected inside a generation"),
        (
            "uncollectable_objects",
            "uncollectable",
            "{object}",
            "The total number of objects which were found to be uncollectable inside a generation",
        ),
    ):
        meter.create_observable_counter(
            f"cpython.gc.{name}",
            while_current(collected(key)),
            unit=unit,
            description=f"{description} since the process started.",
        )


def _statm() -> list[int] | None:
    """[virtual, resident, ...] in pages, or None where there is no /proc (not Linux)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return [int(field) for field in statm.read().split()]
    except OSError:
        return None


def _peak_rss() -> int:
    from resource import RUSAGE_SELF, getrusage

    return getrusage(RUSAGE_SELF).ru_maxrss * PEAK_RSS_UNIT


def _thread_count() -> int:
    try:
        with open("/proc/self/stat", "rb") as stat:
            # Field 20 (num_threads), counted after the command name, which may hold spaces: ") " ends it.
            return int(stat.read().rpartition(b") ")[2].split()[17])
    except (OSError, ValueError, IndexError):
        return threading.active_count()
