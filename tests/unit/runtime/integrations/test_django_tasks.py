"""django.tasks (Django 6.0+): queue time read from a task result, and the one warning line of a Django
that lacks what the integration needs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

pytest.importorskip("django.tasks", reason="django.tasks is Django 6.0 and later")
from otel_launch._runtime.integrations.django import tasks  # noqa: E402

ENQUEUED = datetime(2027, 1, 4, 9, 30, tzinfo=timezone.utc)


def result(started: datetime | None, run_after: datetime | None = None, enqueued: datetime | None = ENQUEUED):
    return SimpleNamespace(enqueued_at=enqueued, started_at=started, task=SimpleNamespace(run_after=run_after))


def test_from_the_moment_the_task_was_stored():
    assert tasks.queue_time(result(ENQUEUED + timedelta(seconds=1.25))) == pytest.approx((1.25, "enqueued"))


def test_a_deferred_task_is_due_at_its_run_after():
    # Deferred by 3 s, started 3.1 s after it was stored: 0.1 s in the queue.
    waited = tasks.queue_time(result(ENQUEUED + timedelta(seconds=3.1), run_after=ENQUEUED + timedelta(seconds=3)))
    assert waited == pytest.approx((0.1, "run_after"))


def test_clocks_that_disagree_give_zero_and_mixed_times_give_none():
    assert tasks.queue_time(result(ENQUEUED - timedelta(seconds=1))) == (0.0, "enqueued")
    assert tasks.queue_time(result(ENQUEUED.replace(tzinfo=None))) is None
    assert tasks.queue_time(result(None, enqueued=None)) is None


def test_a_django_without_the_signals_gets_one_warning_line_and_nothing_patched(monkeypatch, capsys):
    from django.tasks import signals
    from django.tasks.base import Task

    from otel_launch._runtime.integrations import STEPS

    (step,) = [s for s in STEPS if s.trigger == "django.tasks"]
    enqueue = Task.enqueue
    monkeypatch.delattr(signals, "task_started")
    import django.tasks

    step.activate(django.tasks)
    (line,) = capsys.readouterr().err.splitlines()
    assert "task_started" in line
    assert line.endswith("django.tasks tasks are enqueued and run without spans or metrics")
    assert Task.enqueue is enqueue
