"""django.tasks telemetry never fails the app: a failing tracer or step leaves the enqueue, the
row's save and the task's run as they were, with one warning line."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

pytest.importorskip("django")
from otel_launch._runtime.integrations.django import tasks  # noqa: E402

TASK = SimpleNamespace(module_path="shop.tasks.send_receipt", queue_name="default", backend="default")


def broken(*_: object, **__: object) -> None:
    raise RuntimeError("telemetry is broken")


@pytest.fixture(autouse=True)
def fresh_warning(monkeypatch):
    monkeypatch.setattr(tasks, "_failed", [], raising=False)


def enqueue(task: object, *args: object) -> object:
    return SimpleNamespace(id="result-1", args=args)


async def aenqueue(task: object, *args: object) -> object:
    return enqueue(task, *args)


def one_warning(capsys) -> str:
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("otel-launch: warning: django.tasks telemetry failed, the task is unaffected")
    assert "telemetry is broken" in line
    return line


def test_a_tracer_that_fails_leaves_the_enqueue_to_the_app(monkeypatch, capsys):
    monkeypatch.setattr(tasks, "_tracer", broken)
    assert tasks._traced_enqueue(enqueue)(TASK, 7).args == (7,)
    assert asyncio.run(tasks._traced_aenqueue(aenqueue)(TASK, 8)).args == (8,)
    one_warning(capsys)  # once a process, however many enqueues fail


def test_a_span_end_that_fails_after_a_successful_enqueue_returns_its_result(monkeypatch, capsys):
    monkeypatch.setattr(tasks, "_end_enqueue", broken)
    assert tasks._traced_enqueue(enqueue)(TASK, 7).id == "result-1"
    assert asyncio.run(tasks._traced_aenqueue(aenqueue)(TASK, 8)).id == "result-1"
    one_warning(capsys)


def test_the_app_s_own_enqueue_error_still_reaches_it(monkeypatch, capsys):
    monkeypatch.setattr(tasks, "_end_enqueue", broken)

    def failing(task: object) -> None:
        raise ValueError("queue full")

    with pytest.raises(ValueError, match="queue full"):
        tasks._traced_enqueue(failing)(TASK)
    one_warning(capsys)


def test_receivers_that_fail_leave_the_row_s_save_and_the_run_alone(monkeypatch, capsys):
    monkeypatch.setattr(tasks, "_tracer", broken)
    monkeypatch.setattr(tasks.propagate, "inject", broken)
    row = SimpleNamespace(_state=SimpleNamespace(adding=True), args_kwargs={"args": [1], "kwargs": {}})
    tasks.carry_context(instance=row)
    assert row.args_kwargs == {"args": [1], "kwargs": {}}
    result = SimpleNamespace(id="result-2", task=TASK, backend="default", db_result=None)
    tasks.on_started(task_result=result)
    tasks.on_finished(task_result=result)
    one_warning(capsys)


def test_a_span_end_that_fails_leaves_the_app_s_context_as_it_was(monkeypatch, capsys):
    from opentelemetry import context

    before = context.get_current()
    monkeypatch.setattr(tasks, "_end_enqueue", broken)
    tasks._traced_enqueue(enqueue)(TASK)
    assert context.get_current() == before
    one_warning(capsys)
