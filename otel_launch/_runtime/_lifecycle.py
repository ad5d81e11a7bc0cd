"""Process lifecycle, in one place: flush before exit, bounded; stay correct across fork.

The SDK flushes from its own atexit handlers with no bound a dead collector respects, and
processes that leave through ``os._exit`` (fork children of multiprocessing and pre-fork
servers) skip atexit entirely. So providers are created with ``shutdown_on_exit=False``
and registered here instead, and every exit path we can see ends in :func:`shutdown`.
"""

from __future__ import annotations

import atexit
import os
import sys

from otel_launch._runtime._log import warn

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from typing import Any

_providers: list[Any] = []
_flusher: _Flusher | None = None
_installed = False


def install() -> None:
    """Register the exit and fork handlers (once per interpreter)."""
    global _installed
    if _installed:
        return
    _installed = True
    # Registered at interpreter start, so it runs after the app's own atexit handlers.
    atexit.register(shutdown)
    os.register_at_fork(after_in_child=_after_fork_in_child)
    from otel_launch._runtime import _imports

    _imports.when_imported("multiprocessing.util", _flush_multiprocessing_children)
    _imports.when_imported("uvicorn.server", _flush_before_uvicorn_dies_by_its_signal)
    _imports.when_imported("django.utils.autoreload", _let_the_reloaders_child_flush)
    _imports.when_imported("opentelemetry.trace", _let_the_apps_providers_win)
    _imports.when_imported("opentelemetry.metrics", _let_the_apps_providers_win)


class _Flusher:
    """A thread, started while the process runs, that shuts the providers down when asked.

    Python 3.12+ refuses to start threads once the interpreter is finalizing, atexit
    handlers included; a thread started earlier is what lets the exit wait with a bound.
    """

    def __init__(self) -> None:
        import threading

        self.pid = os.getpid()
        self.requested = threading.Event()
        self.done = threading.Event()
        threading.Thread(target=self._run, name="otel-launch-flush", daemon=True).start()

    def _run(self) -> None:
        self.requested.wait()
        for provider in list(_providers):
            try:
                provider.shutdown()
            except Exception as exc:
                warn(f"flushing telemetry failed ({type(exc).__name__}: {exc})")
        self.done.set()


def register(provider: Any) -> None:
    """A provider (tracer, meter, logger) to shut down, flushing, when this process exits."""
    global _flusher
    _providers.append(provider)
    if _flusher is None:
        _flusher = _Flusher()


def shutdown(timeout: float | None = None) -> bool:
    """Flush and shut down every provider, within ``timeout`` seconds in all.

    An export stuck on an unreachable collector is abandoned at the deadline, never waited
    out. Returns False when the deadline passed. Runs once per process; later calls wait
    for the first one's flush, within their own timeout.
    """
    flusher = _flusher
    if flusher is None or flusher.pid != os.getpid():
        return True  # this process never built a provider
    if timeout is None:
        from otel_launch._settings import read_setting

        timeout = read_setting("shutdown_timeout", os.environ)
    flusher.requested.set()
    if flusher.done.wait(timeout):
        return True
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "the default endpoint")
    warn(f"gave up flushing telemetry after {timeout:g}s; is the collector at {endpoint} reachable?")
    return False


def _after_fork_in_child() -> None:
    global _flusher
    # Threads do not survive fork: the child gets its own flusher for its own exit.
    if _flusher is not None:
        _flusher = _Flusher()


class _ForkToken:
    """A weak-referenceable object multiprocessing keeps for its after-fork callbacks."""


_fork_token = _ForkToken()


def _flush_multiprocessing_children(util: Any) -> None:
    # multiprocessing's fork children end in os._exit() after running its finalizers, and
    # clear the finalizers inherited from the parent first; so each child registers its own,
    # with the lowest priority, to run after the app's.
    def register_finalizer(_: object) -> None:
        util.Finalize(None, shutdown, exitpriority=-sys.maxsize)

    util.register_after_fork(_fork_token, register_finalizer)


def _flush_before_uvicorn_dies_by_its_signal(server_module: Any) -> None:
    # uvicorn stops gracefully on SIGTERM or SIGINT, then raises the signal again to die by
    # it, which skips atexit; so flush when its graceful shutdown is over, before that.
    import contextlib

    server_class = server_module.Server
    capture_signals = server_class.capture_signals

    @contextlib.contextmanager
    def flushing_capture_signals(self: Any) -> Any:
        with capture_signals(self):
            try:
                yield
            finally:
                if getattr(self, "_captured_signals", None):
                    shutdown()

    server_class.capture_signals = flushing_capture_signals


def _let_the_reloaders_child_flush(autoreload: Any) -> None:
    # Django's reloader (runserver's parent process) kills its serving child 0.25 s after
    # Ctrl-C, and the child flushes after its own exit work: spans were lost. Ctrl-C reaches
    # the whole foreground group, so the reloader may wait for the child to leave by itself;
    # it does so for at most the child's flush bound, and a second Ctrl-C stops it at once.
    import signal

    restart_with_reloader = autoreload.restart_with_reloader

    def restart_with_reloader_letting_the_child_flush() -> Any:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return restart_with_reloader()  # the app chose its own Ctrl-C handling

        def first_ctrl_c_waits(signum: int, frame: Any) -> None:
            if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
                raise KeyboardInterrupt  # the second Ctrl-C
            from otel_launch._settings import read_setting

            signal.setitimer(signal.ITIMER_REAL, read_setting("shutdown_timeout", os.environ) + 1)

        def give_up_waiting(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt  # Django's own handling follows: kill the child

        previous_alarm = signal.signal(signal.SIGALRM, give_up_waiting)
        signal.signal(signal.SIGINT, first_ctrl_c_waits)
        try:
            return restart_with_reloader()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGALRM, previous_alarm)

    autoreload.restart_with_reloader = restart_with_reloader_letting_the_child_flush


def _let_the_apps_providers_win(module: Any) -> None:
    # An app that sets up OpenTelemetry itself (as the guides do: in wsgi.py, and in every Celery
    # pool child at worker_process_init) sets its providers after ours was built for a first use
    # (e.g. in the worker's main process, before the fork): the API refused them ("Overriding of
    # current TracerProvider is not allowed") and the app lost its resource. Ours was only ever a
    # default: the app's replaces it, quietly, and gets what ours gets (flush at exit, in pool
    # children too). Pinned to the API's globals; the own-telemetry e2e test fails if they change.
    if module.__name__ == "opentelemetry.trace":
        internal, setter, current, once = module, "set_tracer_provider", "_TRACER_PROVIDER", "_TRACER_PROVIDER_SET_ONCE"
    else:
        from opentelemetry.metrics import _internal as internal

        setter, current, once = "set_meter_provider", "_METER_PROVIDER", "_METER_PROVIDER_SET_ONCE"
    original = getattr(module, setter)

    def set_provider_replacing_ours(provider: Any) -> None:
        built = getattr(internal, current, None)  # ours, or a no-op one for a signal that is off
        if built is not None and (built in _providers or not hasattr(built, "shutdown")) and provider not in _providers:
            setattr(internal, once, type(getattr(internal, once))())
        original(provider)
        adopted = getattr(internal, current, None) is provider
        if adopted and provider not in _providers and hasattr(provider, "shutdown"):
            handler = getattr(provider, "_atexit_handler", None)  # ours flushes it, with a bound
            if handler is not None:
                atexit.unregister(handler)
                provider._atexit_handler = None
            register(provider)

    setattr(module, setter, set_provider_replacing_ours)
