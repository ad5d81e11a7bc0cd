"""What a task costs its process: CPU time and peak resident memory growth, per run span and task name.

Worker overload and ``--max-memory-per-child`` recycles are explained by which task burns CPU or
grows memory. Around each task (``worker.on_prerun`` / ``on_postrun``), one
``getrusage(RUSAGE_SELF)`` before and one after give:

- ``celery.task.cpu_time`` (s): user + system CPU time of the task's process across the task;
- ``celery.task.memory.peak_growth`` (By): how much the task raised its process's peak resident
  set size (``ru_maxrss``), the figure ``--max-memory-per-child`` compares with its limit
  (billiard's ``mem_rss``): a task that allocates 50 MB and frees them shows here, where the
  current resident size would be back where it was.

Each goes on the run span and into a histogram per task name (bound once per name,
``_histograms.py``), for the tasks whose span records: an unsampled task reads no clock and
records nothing here: an unsampled task must cost only its propagation and its duration, and the
two readings and their two measurements would add about a quarter to that. The sampler picks
traces at random, so at 10% the histograms hold a tenth of the tasks with the distribution of all.

Measured with callgrind, a call: ``getrusage`` ~3k instructions, ``time.process_time`` ~0.9k (but
no memory figure), ``/proc/self/statm`` ~5k through a kept descriptor, ~24k opened each time; one
``getrusage`` serves both figures.

The CPU time is the process's: exact for the prefork and solo pools (one task at a time in a
process); in a threads, gevent or eventlet pool it also counts the tasks that ran beside it.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import metrics

from otel_launch._runtime.integrations._histograms import BoundHistogram
from otel_launch._runtime.process_metrics import PEAK_RSS_UNIT

try:
    from resource import RUSAGE_SELF, getrusage
except ImportError:  # not on this platform (Windows): tasks go without their cost
    getrusage = None  # type: ignore[assignment]
    RUSAGE_SELF = 0

SCOPE = "otel_launch.celery.cost"
_CPU_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_MIB = 1024 * 1024
_MEMORY_BUCKETS = (0, _MIB, 4 * _MIB, 16 * _MIB, 64 * _MIB, 256 * _MIB, 1024 * _MIB)
# [meter provider, whether it records, cpu histogram, memory histogram]
_instruments: list[Any] = [None, False, None, None]
_bound: dict[str, tuple[Any, Any]] = {}  # task name -> (cpu, memory) histograms bound to its attributes
os.register_at_fork(after_in_child=_bound.clear)  # a child's measurements are its own


def _metered() -> bool:
    """Whether the current meter provider records (not a no-op one); the histograms made on first use."""
    provider = metrics.get_meter_provider()
    if _instruments[0] is not provider:
        from opentelemetry.metrics import NoOpMeterProvider

        _bound.clear()
        if isinstance(provider, NoOpMeterProvider):
            _instruments[:] = provider, False, None, None
        else:
            meter = provider.get_meter(SCOPE)
            _instruments[:] = (
                provider,
                True,
                meter.create_histogram(
                    "celery.task.cpu_time",
                    unit="s",
                    description="CPU time (user and system) of the task's process while it ran the task.",
                    explicit_bucket_boundaries_advisory=_CPU_BUCKETS,
                ),
                meter.create_histogram(
                    "celery.task.memory.peak_growth",
                    unit="By",
                    description="How much a task raised its process's peak resident set size.",
                    explicit_bucket_boundaries_advisory=_MEMORY_BUCKETS,
                ),
            )
    return _instruments[1]


def start(recording: bool) -> tuple[float, int] | None:
    """At the start of a task whose span records: (CPU seconds, peak RSS) of this process; else None."""
    if not recording or getrusage is None:  # an unsampled task costs its propagation and duration only
        return None
    usage = getrusage(RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def finish(name: str, started: tuple[float, int]) -> dict[str, Any]:
    """At the task's end: its cost into its task's histograms; returned as the run span's attributes
    (which the caller sets with its own, in one call: each ``set_attributes`` takes the span's lock)."""
    usage = getrusage(RUSAGE_SELF)
    cpu = max(0.0, usage.ru_utime + usage.ru_stime - started[0])
    growth = max(0, usage.ru_maxrss - started[1]) * PEAK_RSS_UNIT
    attributes = {"celery.task.cpu_time": cpu, "celery.task.memory.peak_growth": growth}
    if not _metered():
        return attributes
    bound = _bound.get(name)
    if bound is None:
        if len(_bound) > 10_000:  # bounded, whatever the app names its tasks
            _bound.clear()
        shared = {"celery.task_name": name}
        bound = _bound[name] = tuple(BoundHistogram(histogram, shared) for histogram in _instruments[2:])
    bound[0].record(cpu)
    bound[1].record(growth)
    return attributes
