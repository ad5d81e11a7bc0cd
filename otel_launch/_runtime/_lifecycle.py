"""Process lifecycle, in one place: flush before exit, bounded; stay correct across fork.

The SDK flushes from its own atexit handlers with no bound a dead collector respects, and
processes that leave through ``os._exit`` (fork children of multiprocessing and pre-fork
servers) skip atexit entirely. So providers are created with ``shutdown_on_exit=False``
and registered here instead, and every exit path we can see ends in :func:`shutdown`.

SIGTERM left at its default kills a process before any of that runs. A process that has
built a provider (and so has spans to lose) and still has the default disposition gets a
handler that flushes, puts the default back and raises the signal again: it still dies by
SIGTERM, as its caller expects. An app's own handler, installed before or after, wins.
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
_adopted: list[Any] = []  # the app's providers that replaced ours: flushed as ours, never replaced
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
        _flush_on_default_sigterm()


def _flush_on_default_sigterm() -> None:
    """Where SIGTERM would kill this process outright, flush first (see the module's docstring).

    Only from the main thread (the only one that may set handlers) and only over the default
    disposition: an ignored SIGTERM stays ignored, an app's handler stays, and servers that
    install theirs later (gunicorn, Celery, uvicorn) replace this one, as they would the default.
    """
    import signal

    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # eventlet's getsignal gives 0
            signal.signal(signal.SIGTERM, _flush_then_die_by_the_signal)
    except (ValueError, OSError):  # not the main thread, or no signals here
        pass


def _flush_then_die_by_the_signal(signum: int, frame: Any) -> None:
    from otel_launch._runtime import _green

    spawn = _green.spawn_if_in_the_hub()
    if spawn is not None:
        spawn(_flush_then_die, signum)  # the hub must not wait: a green thread does
    else:
        _flush_then_die(signum)


def _flush_then_die(signum: int) -> None:
    import signal

    try:
        shutdown()
    finally:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


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
    if os.environ.get("OTEL_CONFIG_FILE", "").strip():  # the file names the endpoints, not the variable
        where = f"the endpoint configured in {os.environ['OTEL_CONFIG_FILE']}"
    else:
        where = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "the default endpoint")
    warn(f"gave up flushing telemetry after {timeout:g}s; is the collector at {where} reachable?")
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
    # Ctrl-C, and at once on SIGTERM (its handler exits, and subprocess.run kills the child on
    # the way out); the child flushes after its own exit work: spans were lost. Ctrl-C reaches
    # the whole foreground group, so the reloader may wait for the child to leave by itself;
    # SIGTERM reaches the reloader alone (docker stop, a process manager), so it is passed on
    # to the child, which exits on it as Django makes it. Either way the reloader waits for at
    # most the child's flush bound, then does what Django does; a second signal stops at once.
    import signal

    restart_with_reloader = autoreload.restart_with_reloader

    def restart_with_reloader_letting_the_child_flush() -> Any:
        django_sigint = signal.getsignal(signal.SIGINT)
        django_sigterm = signal.getsignal(signal.SIGTERM)
        ours_sigint = django_sigint is signal.default_int_handler  # else the app chose its own
        ours_sigterm = getattr(django_sigterm, "__module__", None) == autoreload.__name__
        if not (ours_sigint or ours_sigterm):
            return restart_with_reloader()
        children = _ChildTracking()
        give_up: list[Any] = []

        def wait_for_the_child(signum: int, forward: bool) -> bool:
            """Start the bounded wait; False when Django's own handling must run now."""
            if give_up or (forward and children.child is None):
                return False  # the second signal, or no child to wait for
            from otel_launch._settings import read_setting

            give_up.append(signum)
            if forward:
                children.child.send_signal(signum)
            signal.setitimer(signal.ITIMER_REAL, read_setting("shutdown_timeout", os.environ) + 1)
            return True

        def first_ctrl_c_waits(signum: int, frame: Any) -> None:
            if not wait_for_the_child(signum, forward=False):
                raise KeyboardInterrupt

        def first_sigterm_is_passed_on(signum: int, frame: Any) -> None:
            if not wait_for_the_child(signum, forward=True):
                django_sigterm(signum, frame)

        def give_up_waiting(signum: int, frame: Any) -> None:
            # Django's own handling follows: kill the child, leave as Django does.
            if give_up[0] == signal.SIGTERM:
                django_sigterm(signal.SIGTERM, frame)
            raise KeyboardInterrupt

        previous_alarm = signal.signal(signal.SIGALRM, give_up_waiting)
        if ours_sigint:
            signal.signal(signal.SIGINT, first_ctrl_c_waits)
        if ours_sigterm:
            signal.signal(signal.SIGTERM, first_sigterm_is_passed_on)
            autoreload.subprocess = children
        try:
            status = restart_with_reloader()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            autoreload.subprocess = children.module
            signal.signal(signal.SIGINT, django_sigint)
            signal.signal(signal.SIGTERM, django_sigterm)
            signal.signal(signal.SIGALRM, previous_alarm)
        if give_up == [signal.SIGTERM]:
            django_sigterm(signal.SIGTERM, None)  # leave as Django does, whatever the child's status
        return status

    autoreload.restart_with_reloader = restart_with_reloader_letting_the_child_flush


class _ChildTracking:
    """``subprocess`` as Django's reloader sees it, whose ``run()`` keeps the child it waits for.

    Django starts the serving child with ``subprocess.run(args, env=..., close_fds=False)``
    and keeps no handle a SIGTERM handler could reach; this ``run`` does what that call does
    (start, wait, kill the child if the wait is interrupted) with the child at hand.
    """

    def __init__(self) -> None:
        import subprocess

        self.module = subprocess
        self.child: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        if {"input", "capture_output", "timeout", "check"} & set(kwargs):
            return self.module.run(*args, **kwargs)  # not the call this stands in for
        with self.module.Popen(*args, **kwargs) as child:
            self.child = child
            try:
                child.wait()
            except BaseException:
                child.kill()
                raise
            finally:
                self.child = None
        return self.module.CompletedProcess(child.args, child.returncode)


def _let_the_apps_providers_win(module: Any) -> None:
    # An app that sets up OpenTelemetry itself (as the guides do: in wsgi.py, and in every Celery
    # pool child at worker_process_init) sets its providers after ours was built for a first use
    # (e.g. in the worker's main process, before the fork): the API refused them ("Overriding of
    # current TracerProvider is not allowed") and the app lost its resource. Ours was only ever a
    # default: the app's replaces it, quietly, and gets what ours gets (flush at exit, in pool
    # children too). Only ours gives way: once the app's replaced it, the API's set-once rule
    # holds again for what follows (tests/process/test_providers.py). Pinned to the API's
    # globals; the own-telemetry e2e test fails if they change.
    from otel_launch._runtime import _compat

    if not _compat.usable("app-tracer-provider" if module.__name__ == "opentelemetry.trace" else "app-meter-provider"):
        return
    if module.__name__ == "opentelemetry.trace":
        internal, setter, current, once = module, "set_tracer_provider", "_TRACER_PROVIDER", "_TRACER_PROVIDER_SET_ONCE"
    else:
        from opentelemetry.metrics import _internal as internal

        setter, current, once = "set_meter_provider", "_METER_PROVIDER", "_METER_PROVIDER_SET_ONCE"
    original = getattr(module, setter)

    def set_provider_replacing_ours(provider: Any) -> None:
        built = getattr(internal, current, None)  # ours, or a no-op one for a signal that is off
        ours = built in _providers and not any(built is app for app in _adopted)
        if built is not None and (ours or not hasattr(built, "shutdown")) and provider not in _providers:
            setattr(internal, once, type(getattr(internal, once))())
        original(provider)
        adopted = getattr(internal, current, None) is provider
        if adopted and provider not in _providers and hasattr(provider, "shutdown"):
            handler = getattr(provider, "_atexit_handler", None)  # ours flushes it, with a bound
            if handler is not None:
                atexit.unregister(handler)
                provider._atexit_handler = None
            _adopted.append(provider)
            register(provider)

    setattr(module, setter, set_provider_replacing_ours)
