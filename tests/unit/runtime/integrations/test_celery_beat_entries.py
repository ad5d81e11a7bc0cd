"""Beat's records follow its schedule: an entry removed from it (deleted, disabled) stops being
reported at the next tick, at most a minute later, and a schedule of many entries records a
bounded number of them."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

pytest.importorskip("celery")
from otel_launch._runtime.integrations.celery import beat  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_records(monkeypatch):
    for name in ("_published", "_due", "_lateness"):
        monkeypatch.setattr(beat, name, {})
    monkeypatch.setattr(beat, "_started", [True])  # no instruments: the records only
    monkeypatch.setattr(beat, "_state", [])
    monkeypatch.setattr(beat, "_pruned", [0.0], raising=False)
    monkeypatch.setattr(beat, "_full", [], raising=False)


def entry(name: str) -> SimpleNamespace:
    schedule = SimpleNamespace(remaining_estimate=lambda since: timedelta(seconds=-1), now=lambda: None)
    return SimpleNamespace(name=name, task="shop.tasks.report", last_run_at=None, schedule=schedule)


def publish(name: str) -> None:
    assert beat._wrap_apply_async(lambda self, entry: "sent")(None, entry(name)) == "sent"


def test_an_entry_no_longer_scheduled_is_dropped_at_the_next_tick_at_most_once_a_minute(monkeypatch):
    scheduler = SimpleNamespace(schedule={"nightly": entry("nightly"), "one-off": entry("one-off")})
    tick = beat._wrap_tick(lambda self: 5.0)
    publish("nightly")
    publish("one-off")
    assert tick(scheduler) == 5.0
    del scheduler.schedule["one-off"]  # django-celery-beat: a one-off task ran and was disabled
    assert tick(scheduler) == 5.0
    assert set(beat._published) == set(beat._due) == {"nightly", "one-off"}  # within the minute: kept
    beat._pruned[0] -= 60  # a minute later
    tick(scheduler)
    assert set(beat._published) == set(beat._due) == {"nightly"}


def test_at_most_max_entries_are_recorded_with_one_warning_line(monkeypatch, capsys):
    monkeypatch.setattr(beat, "MAX_ENTRIES", 2, raising=False)
    for name in ("a", "b", "c", "d", "a"):
        publish(name)
    assert set(beat._published) == set(beat._due) == {"a", "b"}
    (line,) = capsys.readouterr().err.splitlines()
    assert "more than 2 entries" in line
