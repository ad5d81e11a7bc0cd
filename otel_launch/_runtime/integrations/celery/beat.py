"""Beat that runs late, or not at all: each publish's lateness, and when each entry last went out.

A schedule entry whose publish comes late (beat overloaded, a long ``tick``) or never (beat
down, a broken schedule, a second beat) is invisible until someone asks why a report did not
arrive. ``celery beat`` sends every due entry through ``Scheduler.apply_async`` (custom
schedulers such as django-celery-beat's too); wrapped here, each publish records:

- ``celery.beat.entry.lateness`` (histogram, s, per entry): from when the entry was due (its
  schedule's estimate from its last run, ``remaining_estimate(last_run_at)``: negative once due)
  to its publish; also on the publish span as ``celery.beat.lateness``;
- ``celery.beat.entry`` on the publish span, and in the message's headers (``BEAT_ENTRY``), so
  that the run span carries it too;
- ``celery.beat.entry.published`` and ``celery.beat.entry.due`` (observable gauges, Unix
  seconds, per entry): the last successful publish and the next due time, read from a dict at
  export.

The gauges are beat's, not the workers': beat is the one process that knows every entry and its
schedule, so a backend gets one series an entry (not one per pool child, vanishing with each
recycled child) and a due time that makes one alert rule fit every interval and crontab; the
task path pays nothing. A beat that is down stops reporting, and the last due time it reported
passes: the alert in docs/django-celery.md fires on both. A second beat shows as a second series
of the same entry. Whether the task then ran is the run span's and ``celery.task.executions``'.

An entry removed from the schedule (deleted, or disabled: django-celery-beat's one-off tasks) is
dropped from the records at the next tick, at most a minute later, so that its last due time does
not fire the alert for ever; and at most ``MAX_ENTRIES`` entries are recorded, whatever the number
a database schedule holds (one an object, say).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from otel_launch._runtime._log import warn
from otel_launch._runtime.integrations._histograms import BoundHistogram
from otel_launch._runtime.integrations.celery import BEAT_ENTRY

SCOPE = "otel_launch.celery.beat"
_LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_sending: list[tuple[str, float]] = []  # (entry, lateness) while beat publishes it
_published: dict[str, list[Any]] = {}  # entry -> [attributes, Unix time of its last successful publish]
_due: dict[str, list[Any]] = {}  # entry -> [attributes, Unix time it is next due]
_state: list[Any] = []  # [lateness histogram], made when the records are set up
_started: list[bool] = []  # the records were set up (once per process, at the first tick or publish)
_lateness: dict[str, Any] = {}  # entry -> the lateness histogram bound to its attributes
_pruned: list[float] = [0.0]  # time.monotonic() of the last drop of entries no longer scheduled
PRUNE_INTERVAL = 60.0  # s between two drops
MAX_ENTRIES = 1_000  # entries recorded; the ones beyond get no gauges nor lateness, with one warning line
_full: list[bool] = []  # the warning of a schedule beyond MAX_ENTRIES was given


def install(beat_module: Any) -> None:
    """``celery.beat`` imported: wrap its scheduler (once)."""
    scheduler = beat_module.Scheduler
    if getattr(scheduler, "_otel_launch_beat", False):
        return
    scheduler._otel_launch_beat = True
    scheduler.tick = _wrap_tick(scheduler.tick)
    scheduler.apply_async = _wrap_apply_async(scheduler.apply_async)


def _attributes(entry: Any) -> dict[str, str]:
    return {"celery.beat.entry": str(entry.name), "celery.task_name": str(entry.task)}


def _next_due(entry: Any, since: Any) -> float:
    """Unix time the entry is due after a run at ``since`` (a datetime), by its own schedule."""
    return time.time() + entry.schedule.remaining_estimate(since).total_seconds()


def _wrap_tick(tick: Any) -> Any:
    @functools.wraps(tick)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _started:
            _start_once(self)
        now = time.monotonic()
        if now - _pruned[0] >= PRUNE_INTERVAL:
            _pruned[0] = now
            prune(self)
        return tick(self, *args, **kwargs)

    return wrapped


def prune(scheduler: Any) -> None:
    """Forget the entries no longer in the scheduler's schedule: their gauges stop being reported."""
    try:
        scheduled = {str(name) for name in scheduler.schedule}
    except Exception:  # a schedule that cannot be read now: the next interval tries again
        return
    for records in (_published, _due, _lateness):
        for name in [name for name in records if name not in scheduled]:
            del records[name]


def _tracked(name: str) -> bool:
    """Whether the entry's records are kept: known already, or room for one more."""
    if name in _published or name in _due or len(_published) < MAX_ENTRIES and len(_due) < MAX_ENTRIES:
        return True
    if not _full:
        _full.append(True)
        warn(f"beat's schedule has more than {MAX_ENTRIES} entries: the others get no lateness or due times")
    return False


def _start_once(scheduler: Any) -> None:
    """At the first tick, or the first publish of a scheduler whose ``tick`` is its own."""
    _started.append(True)
    try:
        _start(scheduler)
    except Exception as exc:  # beat runs on regardless, without these records
        warn(f"beat's lateness and due times are off ({type(exc).__name__}: {exc})")


def _start(scheduler: Any) -> None:
    """The first tick: the instruments, and every entry's due time as the schedule has it."""
    from opentelemetry import metrics
    from opentelemetry.metrics import Observation

    from otel_launch._runtime.integrations import celery

    celery.on_import()  # Celery's publish handlers first: ours reads the publish span they make current
    from celery import signals

    signals.before_task_publish.connect(_on_before_publish, weak=False, dispatch_uid="otel-launch-beat-entry")
    meter = metrics.get_meter(SCOPE)
    _state.append(
        meter.create_histogram(
            "celery.beat.entry.lateness",
            unit="s",
            description="From when a beat schedule entry was due to its publish.",
            explicit_bucket_boundaries_advisory=_LATENESS_BUCKETS,
        )
    )

    def observe(values: dict[str, list[Any]]) -> Any:
        def callback(_: Any) -> list[Any]:
            return [Observation(value, attributes) for attributes, value in list(values.values())]

        return [callback]

    meter.create_observable_gauge(
        "celery.beat.entry.published",
        observe(_published),
        unit="s",
        description="Unix time of the last successful publish of a beat schedule entry.",
    )
    meter.create_observable_gauge(
        "celery.beat.entry.due",
        observe(_due),
        unit="s",
        description="Unix time a beat schedule entry is next due.",
    )
    try:
        for entry in list(scheduler.schedule.values())[:MAX_ENTRIES]:
            _due[str(entry.name)] = [_attributes(entry), _next_due(entry, entry.last_run_at)]
    except Exception:  # a custom scheduler's entries: each gets its due time at its first publish
        pass


def _wrap_apply_async(apply_async: Any) -> Any:
    @functools.wraps(apply_async)
    def wrapped(self: Any, entry: Any, *args: Any, **kwargs: Any) -> Any:
        if not _started:
            _start_once(self)
        try:
            lateness = max(0.0, -entry.schedule.remaining_estimate(entry.last_run_at).total_seconds())
            attributes = _attributes(entry)
        except Exception:  # an entry whose schedule cannot say when it was due: published as it was
            return apply_async(self, entry, *args, **kwargs)
        name = attributes["celery.beat.entry"]
        _sending.append((name, lateness))
        try:
            result = apply_async(self, entry, *args, **kwargs)
        finally:
            _sending.pop()
        if not _tracked(name):
            return result
        now = time.time()
        _published[name] = [attributes, now]
        try:
            _due[name] = [attributes, _next_due(entry, entry.schedule.now())]
        except Exception:
            _due.pop(name, None)
        if _state:
            bound = _lateness.get(name)
            if bound is None:
                bound = _lateness[name] = BoundHistogram(_state[0], attributes)
            bound.record(lateness)
        return result

    return wrapped


def _on_before_publish(headers: Any = None, **_: Any) -> None:
    """``before_task_publish`` in beat: the entry's name travels with the message, and on the publish span."""
    if not _sending:
        return
    name, lateness = _sending[-1]
    if headers is not None:
        headers[BEAT_ENTRY] = name
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("celery.beat.entry", name)
        span.set_attribute("celery.beat.lateness", lateness)
