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
import time

from otel_launch._runtime._log import warn

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from typing import Any

_providers: list[Any] = []
_shut_down_in_pid: int | None = None
_installed = False


def install() -> None:
    """Register the exit and fork handlers (once per interpreter)."""
    global _installed
    if _installed:
        return
    _installed = True
    # Registered at interpreter start, so it runs after the app's own atexit handlers.
    atexit.register(shutdown)
    from otel_launch._runtime import _imports

    _imports.when_imported("multiprocessing.util", _flush_multiprocessing_children)


def register(provider: Any) -> None:
    """A provider (tracer, meter, logger) to shut down, flushing, when this process exits."""
    _providers.append(provider)


def shutdown(timeout: float | None = None) -> bool:
    """Flush and shut down every provider, within ``timeout`` seconds in all.

    Each provider is shut down on its own daemon thread and waited for until the deadline:
    an export stuck on an unreachable collector is abandoned, never waited out. Returns
    False when the deadline passed. Runs once per process; later calls return at once.
    """
    global _shut_down_in_pid
    if _shut_down_in_pid == os.getpid() or not _providers:
        return True
    _shut_down_in_pid = os.getpid()
    if timeout is None:
        from otel_launch._settings import read_setting

        timeout = read_setting("shutdown_timeout", os.environ)
    import threading

    deadline = time.monotonic() + timeout
    threads = []
    for provider in list(_providers):
        thread = threading.Thread(target=_shutdown_one, args=(provider,), name="otel-launch-flush", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no new threads at this stage of interpreter shutdown
            _shutdown_one(provider)
            continue
        threads.append(thread)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "the default endpoint")
        warn(f"gave up flushing telemetry after {timeout:g}s; is the collector at {endpoint} reachable?")
        return False
    return True


def _shutdown_one(provider: Any) -> None:
    try:
        provider.shutdown()
    except Exception as exc:
        warn(f"flushing telemetry failed ({type(exc).__name__}: {exc})")


def _after_fork_in_child() -> None:
    global _shut_down_in_pid
    _shut_down_in_pid = None  # the child has its own exit to flush for


os.register_at_fork(after_in_child=_after_fork_in_child)


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
