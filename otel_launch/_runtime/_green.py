"""gevent's monkey-patching: an integration that would start in the middle of it waits for its end.

``gevent.monkey.patch_all()`` patches threading first and socket, select, ssl, signal and
queue after it, and in between it scans every live object with ``isinstance()`` to fix
the locks created before it. That scan evaluates Celery's lazy proxies (their
``__class__`` is the proxied object's), which import ``celery.app.amqp``, one of our
Celery triggers. Started there, the integration imports the contrib, which imports
``celery.worker`` and ``kombu.asynchronous``, which keep the native ``select.poll``; it
also builds the SDK with threads that are greenlets and a ``queue`` that is not yet. The
worker then blocked for good (``celery worker --pool gevent`` never started, or stopped
after a few tasks). Without the launcher those modules are imported only once patching is
over, so that is when the integration starts: at gevent's "did patch all" event (or its
"did patch module" for a lone ``patch_thread()``), which gevent sends to ``zope.event``
subscribers before ``patch_all()`` returns.

eventlet needs none of this: its scan runs after every module is patched.

Also here: a signal handler that must wait (the flush on SIGTERM) cannot do it in the hub of
gevent or eventlet, where Python handlers often run (the hub is what waits for events).
"""

from __future__ import annotations

import sys

from otel_launch._runtime._log import warn

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable

_deferred: list[Callable[[], None]] = []
_subscribed = False
_running = False


def deferred_while_patching(start: Callable[[], None]) -> bool:
    """Run ``start`` later, and return True, when called from inside gevent's patching."""
    if _running or "gevent.monkey" not in sys.modules:
        return False
    if not _inside("patch"):
        _run_deferred()  # patching ended without the event we waited for (it raised)
        return False
    _deferred.append(start)
    _subscribe()
    return True


def _inside(prefix: str) -> bool:
    """Whether a function of gevent.monkey named ``prefix...`` (or ``_prefix...``) is running.

    Only the patch functions count: ``python -m gevent.monkey app.py`` runs the whole app
    from a ``gevent.monkey`` frame, after patching."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name.lstrip("_").startswith(prefix) and str(frame.f_globals.get("__name__")).startswith(
            "gevent.monkey"
        ):
            return True
        frame = frame.f_back
    return False


def _subscribe() -> None:
    global _subscribed
    if not _subscribed:
        import zope.event  # a gevent dependency, its event bus

        zope.event.subscribers.append(_on_gevent_event)
        _subscribed = True


def _on_gevent_event(event: object) -> None:
    if not _deferred:
        return
    from gevent import events

    if isinstance(event, events.GeventDidPatchAllEvent) or (
        isinstance(event, events.GeventDidPatchModuleEvent) and not _inside("patch_all")
    ):
        _run_deferred()


def _run_deferred() -> None:
    global _running
    _running = True
    try:
        while _deferred:
            start = _deferred.pop(0)
            try:
                start()
            except Exception as exc:  # gevent must patch on, whatever an integration does
                warn(f"telemetry set-up failed after gevent's patching ({type(exc).__name__}: {exc})")
    finally:
        _running = False


def spawn_if_in_the_hub() -> Callable[..., object] | None:
    """The green ``spawn`` to use when running in the gevent or eventlet hub (which must never
    block), else None."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return None
    current = greenlet.getcurrent()
    if "gevent.hub" in sys.modules:
        import gevent
        from gevent.hub import Hub

        if isinstance(current, Hub):
            return gevent.spawn
    if "eventlet.hubs" in sys.modules:
        import eventlet
        from eventlet import hubs

        if getattr(hubs.get_hub(), "greenlet", None) is current:
            return eventlet.spawn
    return None
