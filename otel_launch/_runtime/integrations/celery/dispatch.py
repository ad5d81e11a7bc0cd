"""``task_prerun`` and ``task_postrun`` handed to their receivers without Celery's signal dispatch.

Why: Celery's task tracer (the ``trace_task`` that ``celery.app.trace.build_tracer`` returns, what
a pool child, an eager ``apply()`` and ``task_always_eager`` run for each task) sends both signals
through the module globals ``send_prerun`` and ``send_postrun`` of ``celery.app.trace``: the
signals' ``Signal.send``, whenever the signal has a receiver. That dispatch (the sender's id, the
lock, the receiver list filtered, dereferenced and copied, the response list, twice a task) was
~42k instructions of an unsampled task's ~149k with ours the only receivers, and ~67k of plain
Celery's ~259k with receivers connected as Celery's Django fixup connects its own (weakly, bound
methods, for any sender): every Django project's worker (``bench/instructions.py celery``).

What it reproduces: ``Signal.send`` (Celery 5.2-5.7) for a signal whose every receiver is
connected for any sender (its lookup key's sender id Celery's ``NONE_ID``) and that has no dead
weak receiver pending removal: each receiver, in the signal's order, a weak one dereferenced at
each send (all of them before the first is called, as ``_live_receivers`` does), called with
``signal``, ``sender`` and the named arguments; an exception it raises logged by Celery's
dispatch logger (``Signal handler %r raised: %r``) and returned as its response, never raised into
the task; the responses returned as ``[(receiver, response), ...]``. What was checked of the
receivers is kept with a copy of ``Signal.receivers`` and holds while the list compares equal to
it. Whenever anything differs (a receiver for a specific sender, a dead weak receiver, dead ones
pending, ``use_caching``, a list that no longer compares equal and fails the check) the call goes
to ``Signal.send`` itself, unchanged. ``tests/unit/runtime/integrations/test_celery_dispatch.py``
compares the two on real Celery signals, ``tests/process/test_celery.py`` runs tasks through
Celery's tracer with and without this and compares what they record.

Celery internals relied on: ``celery.app.trace.send_prerun`` / ``send_postrun`` being the signals'
``send`` (read at each call by ``trace_task``), ``Signal.receivers`` as a list of ``((receiver
id, sender id), receiver)``, a weak receiver a ``weakref.ref`` (``WeakMethod`` for a bound
method), ``Signal._dead_receivers`` set when a weak receiver's object dies, ``NONE_ID`` and
``Signal.use_caching`` off for these two signals. When Celery's module or signals are not so,
nothing is replaced and the signals dispatch as before (no record is lost).
"""

from __future__ import annotations

import sys
from typing import Any

_REPLACED = ("send_prerun", "send_postrun")


def install() -> bool:
    """Have Celery's task tracer call the receivers of ``task_prerun`` and ``task_postrun`` (ours
    among them) without its dispatch; whether it could. Once per process (a pool child inherits it)."""
    trace = sys.modules.get("celery.app.trace")
    if trace is None:
        return False
    from celery import signals

    replaced_signals = (signals.task_prerun, signals.task_postrun)
    current = [getattr(trace, name, None) for name in _REPLACED]
    if all(getattr(send, "_otel_launch_direct", False) for send in current):
        return True
    if any(
        send != signal.send or not _as_known(signal) for send, signal in zip(current, replaced_signals, strict=True)
    ):
        return False  # not Celery's dispatch as we know it: the signals stay as they are
    for name, send, signal in zip(_REPLACED, current, replaced_signals, strict=True):
        setattr(trace, name, direct(signal, send))
    return True


def _as_known(signal: Any) -> bool:
    try:
        from celery.utils.dispatch.signal import NONE_ID, logger  # noqa: F401
    except ImportError:
        return False
    dead = getattr(signal, "_dead_receivers", None)
    return isinstance(signal.receivers, list) and isinstance(dead, bool) and not signal.use_caching


def uninstall() -> None:
    """Celery's own ``send`` back in place (tests; ours are then reached through the signals)."""
    trace = sys.modules.get("celery.app.trace")
    for name in _REPLACED:
        send = getattr(trace, name, None)
        if getattr(send, "_otel_launch_direct", False):
            setattr(trace, name, send.__wrapped__)


def _for_any_sender(receivers: list[Any], none_id: Any) -> bool:
    """Whether each of ``receivers`` (a copy of ``Signal.receivers``) is connected for any sender."""
    for entry in receivers:
        if not (isinstance(entry, tuple) and len(entry) == 2 and callable(entry[1])):
            return False
        key = entry[0]
        if not (isinstance(key, tuple) and len(key) == 2 and key[1] == none_id):
            return False
    return True


def direct(signal: Any, send: Any) -> Any:
    """``send`` of ``signal``, calling its receivers itself while all are for any sender."""
    from weakref import ReferenceType

    from celery.utils.dispatch.signal import NONE_ID, logger

    # A copy of signal.receivers found all for any sender, its receivers, and whether any is weak
    # (one tuple: a thread reads the three as one).
    checked: tuple[Any, tuple[Any, ...], bool] = (None, (), False)

    def send_direct(sender: Any = None, **named: Any) -> list[tuple[Any, Any]]:
        nonlocal checked
        if signal._dead_receivers or signal.use_caching:
            return send(sender, **named)  # Celery's dispatch clears the dead, or consults its cache
        known, receivers, weak = checked
        if signal.receivers != known:
            copy = list(signal.receivers)  # checked as a copy: another thread may connect meanwhile
            if not _for_any_sender(copy, NONE_ID):
                return send(sender, **named)  # a receiver for a specific sender: Celery filters
            receivers = tuple(receiver for _, receiver in copy)
            weak = any(isinstance(receiver, ReferenceType) for receiver in receivers)  # ref, WeakMethod
            checked = (copy, receivers, weak)
        if len(receivers) == 1 and not weak:  # ours alone, the commonest: no list to build
            (receiver,) = receivers
            try:
                return [(receiver, receiver(signal=signal, sender=sender, **named))]
            except Exception as exc:  # as Signal.send: logged, returned, never raised into the task
                logger.exception("Signal handler %r raised: %r", receiver, exc)
                return [(receiver, exc)]
        if weak:  # each dereferenced before the first is called, as Signal._live_receivers does
            live = []
            for receiver in receivers:
                if isinstance(receiver, ReferenceType):
                    receiver = receiver()
                    if receiver is None:
                        return send(sender, **named)  # died since: Celery's dispatch drops it
                live.append(receiver)
            receivers = live
        responses = []
        for receiver in receivers:
            try:
                response = receiver(signal=signal, sender=sender, **named)
            except Exception as exc:  # as Signal.send: logged, returned, never raised into the task
                logger.exception("Signal handler %r raised: %r", receiver, exc)
                responses.append((receiver, exc))
            else:
                responses.append((receiver, response))
        return responses

    send_direct.__wrapped__ = send  # type: ignore[attr-defined]
    send_direct._otel_launch_direct = True  # type: ignore[attr-defined]
    return send_direct
