"""celery/dispatch.py's ``send`` against Celery's ``Signal.send``, on real Celery signals: the same
responses, a handler's exception logged and returned, receivers for any sender (ours, and others
connected as Celery's Django fixup connects its own) called without Celery's dispatch, and
Celery's dispatch whenever one is for a specific sender or a weak one has died."""

from __future__ import annotations

import gc
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


@pytest.fixture
def looked_up(monkeypatch) -> list:
    """The signals whose receivers Celery's dispatch looked up (``Signal._live_receivers``)."""
    seen: list = []
    live_receivers = Signal._live_receivers

    def counting(self, sender):
        seen.append(self.name)
        return live_receivers(self, sender)

    monkeypatch.setattr(Signal, "_live_receivers", counting)
    return seen


class Fixup:
    """Receivers as Celery's Django fixup has them: bound methods, connected weakly for any sender."""

    def __init__(self) -> None:
        self.seen: list = []

    def on_task_prerun(self, sender=None, **kwargs):
        self.seen.append(kwargs["task_id"])

    def on_task_postrun(self, sender=None, **kwargs):
        self.seen.append(f"post {kwargs['task_id']}")
        return "closed"


def _signal(receiver) -> Signal:
    signal = Signal(name="task_prerun")
    signal.connect(receiver, weak=False, dispatch_uid="ours")
    return signal


def test_the_one_receiver_is_called_as_celery_calls_it():
    signal = _signal(handler)
    direct = dispatch.direct(signal, signal.send)
    assert direct(sender="task", task_id="1", task="task") == signal.send(sender="task", task_id="1", task="task")
    assert calls[0] == calls[1] == {"signal": signal, "sender": "task", "task_id": "1", "task": "task"}


def test_an_exception_of_the_handler_is_logged_and_returned_never_raised(caplog):
    signal = _signal(failing)
    direct = dispatch.direct(signal, signal.send)
    with caplog.at_level(logging.ERROR, logger="celery.utils.dispatch.signal"):
        ours, celerys = direct(sender="task", task_id="1"), signal.send(sender="task", task_id="1")
    assert [(r, type(e), str(e)) for r, e in ours] == [(r, type(e), str(e)) for r, e in celerys]
    assert [r.getMessage() for r in caplog.records][0] == [r.getMessage() for r in caplog.records][1]
    assert len(caplog.records) == 2


def test_receivers_for_any_sender_are_called_in_order_without_celerys_dispatch(looked_up):
    signal = _signal(handler)
    fixup = Fixup()
    signal.connect(fixup.on_task_prerun)  # as DjangoWorkerFixup.install: weakly, any sender
    signal.connect(fixup.on_task_postrun)
    direct = dispatch.direct(signal, signal.send)
    ours = direct(sender="task", task_id="1")
    assert looked_up == []  # Celery's dispatch skipped
    celerys = signal.send(sender="task", task_id="1")
    assert ours == celerys == [(handler, "handled"), (fixup.on_task_prerun, None), (fixup.on_task_postrun, "closed")]
    assert ours[1][0].__self__ is fixup  # the bound method itself, dereferenced
    assert fixup.seen == ["1", "post 1", "1", "post 1"] and calls[0] == calls[1]


def test_an_exception_among_several_receivers_is_logged_and_the_others_still_run(caplog, looked_up):
    signal = _signal(failing)
    fixup = Fixup()
    signal.connect(fixup.on_task_postrun)
    direct = dispatch.direct(signal, signal.send)
    with caplog.at_level(logging.ERROR, logger="celery.utils.dispatch.signal"):
        ours = direct(sender="task", task_id="1")
        assert looked_up == []
        celerys = signal.send(sender="task", task_id="1")
    assert [(r, type(e), str(e)) for r, e in ours[:1]] == [(r, type(e), str(e)) for r, e in celerys[:1]]
    assert ours[1:] == celerys[1:] == [(fixup.on_task_postrun, "closed")] and len(fixup.seen) == 2
    assert [r.getMessage() for r in caplog.records][0] == [r.getMessage() for r in caplog.records][1]


def test_a_receiver_connected_or_ours_taken_off_is_seen_at_the_next_send(looked_up):
    signal = _signal(handler)
    direct = dispatch.direct(signal, signal.send)
    seen = []

    def other(**kwargs):
        seen.append(kwargs["task_id"])

    assert direct(sender="task", task_id="0") == [(handler, "handled")]
    signal.connect(other, weak=False)
    assert direct(sender="task", task_id="1") == [(handler, "handled"), (other, None)]
    signal.disconnect(dispatch_uid="ours")
    assert direct(sender="task", task_id="2") == [(other, None)]
    signal.disconnect(other)
    assert direct(sender="task", task_id="3") == [] == signal.send(sender="task", task_id="3")
    assert seen == ["1", "2"] and [c["task_id"] for c in calls] == ["0", "1"]
    assert looked_up == []  # not even the last signal.send: it has no receiver to look up


def test_a_receiver_for_a_specific_sender_leaves_it_to_celery(looked_up):
    signal = _signal(handler)
    seen = []

    def for_one_task(**kwargs):
        seen.append(kwargs["sender"])

    signal.connect(for_one_task, sender="one", weak=False)
    direct = dispatch.direct(signal, signal.send)
    assert direct(sender="other", task_id="1") == [(handler, "handled")]
    assert direct(sender="one", task_id="2") == [(handler, "handled"), (for_one_task, None)]
    assert seen == ["one"] and looked_up == ["task_prerun", "task_prerun"]


def test_a_dead_weak_receiver_leaves_it_to_celery(looked_up):
    signal = _signal(handler)
    fixup = Fixup()
    signal.connect(fixup.on_task_prerun)
    direct = dispatch.direct(signal, signal.send)
    assert len(direct(sender="task", task_id="1")) == 2 and looked_up == []
    del fixup
    gc.collect()
    assert signal._dead_receivers  # pending: Celery's dispatch clears them
    assert direct(sender="task", task_id="2") == [(handler, "handled")]
    assert looked_up == ["task_prerun"] and len(signal.receivers) == 1
    assert direct(sender="task", task_id="3") == [(handler, "handled")] and looked_up == ["task_prerun"]


def test_a_weak_receiver_dead_before_it_is_marked_leaves_it_to_celery(looked_up):
    signal = _signal(handler)
    fixup = Fixup()
    signal.connect(fixup.on_task_prerun)
    direct = dispatch.direct(signal, signal.send)
    assert len(direct(sender="task", task_id="1")) == 2
    del fixup
    gc.collect()
    signal._dead_receivers = False  # the finalizer not run yet: only the reference knows
    assert direct(sender="task", task_id="2") == [(handler, "handled")]
    assert looked_up == ["task_prerun"]


def test_use_caching_leaves_it_to_celery(looked_up):
    signal = _signal(handler)
    direct = dispatch.direct(signal, signal.send)
    signal.use_caching = True
    assert direct(sender="task", task_id="1") == [(handler, "handled")] and looked_up == ["task_prerun"]


def test_installed_once_and_only_over_celerys_own_dispatch(monkeypatch):
    from celery import signals
    from celery.app import trace

    monkeypatch.setattr(trace, "send_prerun", signals.task_prerun.send)
    monkeypatch.setattr(trace, "send_postrun", signals.task_postrun.send)
    assert dispatch.install()
    direct = trace.send_prerun
    assert direct.__wrapped__ == signals.task_prerun.send
    assert dispatch.install() and trace.send_prerun is direct  # not wrapped twice
    dispatch.uninstall()
    assert trace.send_prerun == signals.task_prerun.send and trace.send_postrun == signals.task_postrun.send

    def someone_elses(sender=None, **named):
        return []

    monkeypatch.setattr(trace, "send_prerun", someone_elses)  # not Celery's dispatch: left as it is
    assert not dispatch.install()
    assert trace.send_prerun is someone_elses and trace.send_postrun == signals.task_postrun.send
