"""``task_prerun`` and ``task_postrun`` handed to otel-launch's handlers without Celery's signal dispatch.

Why: Celery's task tracer (the ``trace_task`` that ``celery.app.trace.build_tracer`` returns, what
a pool child, an eager ``apply()`` and ``task_always_eager`` run for each task) sends both signals
through the module globals ``send_prerun`` and ``send_postrun`` of ``celery.app.trace``: the
signals' ``Signal.send``, whenever the signal has a receiver. For a project whose only receiver
is ours (no Django fixup, no receiver of the app's), that dispatch was ~42k instructions of an
unsampled task's ~149k (``bench/instructions.py celery``): the sender's id, the lock, the receiver
list filtered and copied, the response list, twice a task.

What it reproduces: ``Signal.send`` (Celery 5.2-5.7) for a signal whose one receiver is ours,
connected strongly for every sender: the receiver called with ``signal``, ``sender`` and the
named arguments; an exception it raises logged by Celery's dispatch logger (``Signal handler %r
raised: %r``) and returned as its response, never raised into the task; the responses returned as
``[(receiver, response)]``. Whenever the signal has any other receiver (Celery's Django fixup, the
app's own, the contrib's after a fallback took ours off) the call goes to ``Signal.send`` itself,
unchanged: every receiver then runs in its order, ours among them. ``tests/unit/runtime/
integrations/test_celery_dispatch.py`` runs tasks through Celery's tracer with and without this
and compares what they record.

Celery internals relied on: ``celery.app.trace.send_prerun`` / ``send_postrun`` being the signals'
``send`` (read at each call by ``trace_task``), ``Signal.receivers`` as ``[(lookup key,
receiver)]`` and ``Signal.use_caching`` off for these two signals. When Celery's module does not
have them so, nothing is replaced and the signals dispatch as before (no record is lost).
"""

from __future__ import annotations

import sys
from typing import Any

_REPLACED = ("send_prerun", "send_postrun")


def install(prerun: Any, postrun: Any) -> bool:
    """Have Celery's task tracer call ``prerun`` and ``postrun`` directly while each is the only
    receiver of its signal; whether it could. Once per process (a pool child inherits it)."""
    trace = sys.modules.get("celery.app.trace")
    if trace is None:
        return False
    from celery import signals

    pairs = ((signals.task_prerun, prerun), (signals.task_postrun, postrun))
    current = [getattr(trace, name, None) for name in _REPLACED]
    if all(getattr(send, "_otel_launch_direct", False) for send in current):
        return True
    if any(send != signal.send or signal.use_caching for send, (signal, _) in zip(current, pairs, strict=True)):
        return False  # not Celery's dispatch as we know it: the signals stay as they are
    for name, send, (signal, handler) in zip(_REPLACED, current, pairs, strict=True):
        setattr(trace, name, direct(signal, handler, send))
    return True


def uninstall() -> None:
    """Celery's own ``send`` back in place (tests; ours are then reached through the signals)."""
    trace = sys.modules.get("celery.app.trace")
    for name in _REPLACED:
        send = getattr(trace, name, None)
        if getattr(send, "_otel_launch_direct", False):
            setattr(trace, name, send.__wrapped__)


def direct(signal: Any, handler: Any, send: Any) -> Any:
    """``send`` of ``signal``, calling ``handler`` itself while it is the signal's one receiver."""
    from celery.utils.dispatch.signal import logger

    def send_direct(sender: Any = None, **named: Any) -> list[tuple[Any, Any]]:
        receivers = signal.receivers
        if len(receivers) != 1 or receivers[0][1] is not handler:
            return send(sender, **named)  # another receiver, or ours taken off: Celery's dispatch
        try:
            response = handler(signal=signal, sender=sender, **named)
        except Exception as exc:  # as Signal.send: logged, returned, never raised into the task
            logger.exception("Signal handler %r raised: %r", handler, exc)
            return [(handler, exc)]
        return [(handler, response)]

    send_direct.__wrapped__ = send  # type: ignore[attr-defined]
    send_direct._otel_launch_direct = True  # type: ignore[attr-defined]
    return send_direct
