"""Stand-ins that instrument a library at its first call, with no window for an untraced call.

Instrumenting a client builds the SDK and imports the contrib instrumentation (50-150 ms), so
``sqlite3.connect`` and the HTTP clients' send methods get a stand-in at import, and the first
call instruments. The stand-in never leaves its place while that runs: a thread calling in the
meantime finds it, waits for the first call's instrumentation, and goes on through the
instrumented function. (Putting the original back for the contrib to wrap left it in place for
the whole set-up: a pool thread connecting then kept an untraced connection for its life.)

So the contrib wraps the stand-in, and the stand-in must tell its callers apart:

- called by an instrumentation's wrapper (a function of an ``opentelemetry.`` module, through
  wrapt's frames if any), or again from inside its own call: it is the innermost step, and
  calls the original;
- called by anyone else (the module's or class's attribute before instrumentation, a reference
  kept from before): it calls what the attribute holds now, the instrumented function.

The caller is read from the frame (``sys._getframe``, one frame up, plus wrapt's), a few
hundred nanoseconds a call, paid on calls that go out of the process anyway.
"""

from __future__ import annotations

import contextvars
import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

# The stand-in whose call is passing through what wraps it (each stand-in sees only its own).
_inside: contextvars.ContextVar[Any] = contextvars.ContextVar("otel_launch_inside_stand_in", default=None)


def _called_by_instrumentation(frame: Any) -> bool:
    while frame is not None:
        module = frame.f_globals.get("__name__") or ""
        if not module.startswith("wrapt"):
            return module.startswith("opentelemetry.")
        frame = frame.f_back
    return False


class FirstUse:
    """One library's instrumentation, run once, at the first call of any of its stand-ins."""

    def __init__(self, name: str, instrument: Callable[[], object]) -> None:
        self.name = name
        self._instrument = instrument
        self.done = False
        self._started = False
        # One a library: a thread instrumenting one never waits for another's set-up; reentrant,
        # for an instrumentation that calls a stand-in of its own library.
        self._lock = threading.RLock()

    def run(self) -> None:
        """Instrument, once; every other caller waits until that is through."""
        with self._lock:
            if self._started:  # done, or this thread's own instrumentation called a stand-in
                return
            self._started = True
            try:
                self._instrument()
            except Exception as exc:  # never stand between the app and its own call
                from otel_launch._runtime._log import warn

                warn(f"could not instrument {self.name}, it runs without telemetry ({type(exc).__name__}: {exc})")
            finally:
                self.done = True

    def stand_in(self, original: Any, current: Callable[[], Any], is_async: bool = False) -> Any:
        """A function to put where ``original`` is; ``current()`` reads what is there now."""
        first_use = self

        def route(stand_in: Any, frame: Any) -> Any:
            """Where this call goes: the original, or the instrumented attribute."""
            if not first_use.done:
                first_use.run()
            if _inside.get() is stand_in or _called_by_instrumentation(frame):
                return None
            target = current()
            return None if target is stand_in else target

        if is_async:

            @functools.wraps(original)
            def stand_in_async(*args: Any, **kwargs: Any) -> Any:
                # Not a coroutine function: the caller is read now, and the awaitable returned.
                target = route(stand_in_async, sys._getframe(1))
                return (original if target is None else target)(*args, **kwargs)

            stand_in_async._otel_launch_original = original  # type: ignore[attr-defined]
            return stand_in_async

        @functools.wraps(original)
        def stand_in(*args: Any, **kwargs: Any) -> Any:
            target = route(stand_in, sys._getframe(1))
            if target is None:
                return original(*args, **kwargs)
            token = _inside.set(stand_in)  # whatever wraps us, and calls us back, reaches the original
            try:
                return target(*args, **kwargs)
            finally:
                _inside.reset(token)

        stand_in._otel_launch_original = original  # type: ignore[attr-defined]
        return stand_in
