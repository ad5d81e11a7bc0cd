"""celery/dispatch.py's ``send`` against Celery's ``Signal.send``, on real Celery signals: the same
responses, a handler's exception logged and returned, other receivers reached through Celery."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("celery")

from celery.utils.dispatch.signal import Signal  # noqa: E402

from otel_launch._runtime.integrations.celery import dispatch  # noqa: E402

calls: list[dict] = []


def handler(**kwargs):
    calls.append(kwargs)
    return "handled"


def failing(**kwargs):
    raise ValueError("telemetry failed")


@pytest.fixture(autouse=True)
def _cleared():
    calls.clear()


def _signal(receiver) -> Signal:
    signal = Signal(name="task_prerun")
    signal.connect(receiver, weak=False, dispatch_uid="ours")
    return signal


def test_the_one_receiver_is_called_as_celery_calls_it():
    signal = _signal(handler)
    direct = dispatch.direct(signal, handler, signal.send)
    assert direct(sender="task", task_id="1", task="task") == signal.send(sender="task", task_id="1", task="task")
    assert calls[0] == calls[1] == {"signal": signal, "sender": "task", "task_id": "1", "task": "task"}


def test_an_exception_of_the_handler_is_logged_and_returned_never_raised(caplog):
    signal = _signal(failing)
    direct = dispatch.direct(signal, failing, signal.send)
    with caplog.at_level(logging.ERROR, logger="celery.utils.dispatch.signal"):
        ours, celerys = direct(sender="task", task_id="1"), signal.send(sender="task", task_id="1")
    assert [(r, type(e), str(e)) for r, e in ours] == [(r, type(e), str(e)) for r, e in celerys]
    assert [r.getMessage() for r in caplog.records][0] == [r.getMessage() for r in caplog.records][1]
    assert len(caplog.records) == 2


def test_with_another_receiver_or_ours_taken_off_celery_dispatches():
    signal = _signal(handler)
    direct = dispatch.direct(signal, handler, signal.send)
    seen = []

    def other(**kwargs):
        seen.append(kwargs["task_id"])

    signal.connect(other, weak=False)
    assert direct(sender="task", task_id="1") == [(handler, "handled"), (other, None)]
    signal.disconnect(dispatch_uid="ours")
    assert direct(sender="task", task_id="2") == [(other, None)]
    assert seen == ["1", "2"] and [c["task_id"] for c in calls] == ["1"]


def test_installed_once_and_only_over_celerys_own_dispatch(monkeypatch):
    from celery import signals
    from celery.app import trace

    monkeypatch.setattr(trace, "send_prerun", signals.task_prerun.send)
    monkeypatch.setattr(trace, "send_postrun", signals.task_postrun.send)
    assert dispatch.install(handler, handler)
    direct = trace.send_prerun
    assert direct.__wrapped__ == signals.task_prerun.send
    assert dispatch.install(handler, handler) and trace.send_prerun is direct  # not wrapped twice
    dispatch.uninstall()
    assert trace.send_prerun == signals.task_prerun.send and trace.send_postrun == signals.task_postrun.send

    def someone_elses(sender=None, **named):
        return []

    monkeypatch.setattr(trace, "send_prerun", someone_elses)  # not Celery's dispatch: left as it is
    assert not dispatch.install(handler, handler)
    assert trace.send_prerun is someone_elses and trace.send_postrun == signals.task_postrun.send
