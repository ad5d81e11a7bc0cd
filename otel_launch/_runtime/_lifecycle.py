"""Process lifecycle, in one place: flush before exit, bounded; stay correct across fork.

The SDK flushes from its own atexit handlers with no bound a dead collector respects, and
processes that leave through ``os._exit`` (fork children of multiprocessing and pre-fork
servers) skip atexit entirely. So providers are created with ``shutdown_on_exit=False``
and registered here instead, and every exit path we can see ends in :func:`shutdown`.

SIGTERM left at its default kills a process before any of that runs. A process that has
built a provider (and so has spans to lose) and still has the default disposition gets a
handler that starts the flush on a helper thread and returns at once, so that the code it
interrupted can let go of what it holds (the batch processor's export lock, a logging
lock); when the flush is over, or the bound has passed, the signal is delivered again and
the process dies by it, as its caller expects. An app's own handler, installed before or
after, wins.

A process forked without Python's fork hooks (uWSGI forks its workers from C; so can C
extensions) inherits providers that believe they belong to its parent: their threads are
gone and their identity is the parent's. The SDK's batch processor notices the new PID on
the process's first span; that is where :func:`renew_after_unannounced_fork` runs, once,
and gives the process what a Python fork would have: its own ``process.pid`` and
``service.instance.id``, export and metric threads, exporter (``sdk.parts.PerProcessExporter``)
and exit flush.
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
_batchers: list[tuple[Any, str]] = []  # (our batch processor, what it queues): counted when a flush gives up
_flusher: _Flusher | None = None
_installed = False
_first_record_hooks: list[Any] = []  # run once per process, at its first span or log record
_first_record_seen: set[int] = set()  # pids in which they ran
_deferred_signal: list[int] = []  # a SIGTERM whose delivery waits for the flush (see _deliver_after_the_flush)


def install() -> None:
    """Register the exit and fork handlers (once per interpreter)."""
    global _installed
    if _installed:
        return
    _installed = True
    # Registered at interpreter start, so it runs after the app's own atexit handlers.
    atexit.register(shutdown)
    os.register_at_fork(
        before=_let_exports_finish, after_in_parent=_release_exports, after_in_child=_after_fork_in_child
    )
    from otel_launch._runtime import _imports

    _imports.when_imported("multiprocessing.util", _flush_multiprocessing_children)


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
        self.flushing = ""  # what the provider being shut down holds: named when the wait gives up
        threading.Thread(target=self._run, name="otel-launch-flush", daemon=True).start()

    def _run(self) -> None:
        self.requested.wait()
        # Spans first, metrics last: what one provider's flush cannot finish never holds the others'.
        for provider in sorted(_providers, key=_metrics_last):
            self.flushing = _holds(provider)
            try:
                provider.shutdown()
            except Exception as exc:
                warn(f"flushing telemetry failed ({type(exc).__name__}: {exc})")
        self.done.set()


def registered(provider: Any) -> bool:
    """Whether this provider is one this module flushes at exit (ours, or an app's it adopted)."""
    return provider in _providers


def register(provider: Any) -> None:
    """A provider (tracer, meter, logger) to shut down, flushing, when this process exits."""
    global _flusher
    _providers.append(provider)
    if _flusher is None:
        _flusher = _Flusher()
        _flush_on_default_sigterm()


def _metrics_last(provider: Any) -> bool:
    return hasattr(provider, "_metric_readers")


def _holds(provider: Any) -> str:
    """What a provider records, as the give-up line names it (which flush the bound ran out in)."""
    if _metrics_last(provider):
        return "metrics"
    return "log records" if hasattr(provider, "get_logger") else "spans"


def track_batcher(processor: Any, what: str) -> None:
    """One of our batch processors ("spans", "log records"): what its queue holds is said when a flush gives up."""
    _batchers.append((processor, what))


def on_first_record(hook: Any) -> None:
    """Run ``hook()`` once in each process, at its first span or log record (now, if that has passed)."""
    if hook in _first_record_hooks:
        return
    _first_record_hooks.append(hook)
    if os.getpid() in _first_record_seen:
        _run_first_record_hooks(hook)


def first_record() -> None:
    """Called by our batch processors at a process's first record, and after a renewal."""
    pid = os.getpid()
    if pid not in _first_record_seen:
        _first_record_seen.add(pid)
        _run_first_record_hooks(*_first_record_hooks)


def _run_first_record_hooks(*hooks: Any) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception as exc:
            warn(f"telemetry set-up failed in this process ({type(exc).__name__}: {exc})")


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

    if _deferred_signal:  # delivered again after the flush (or a second SIGTERM): die by it now
        _die_by(signum)
    spawn = _green.spawn_if_in_the_hub()
    if spawn is not None:
        spawn(_flush_then_die, signum)  # the hub must not wait: a green thread does
        return
    if _threads_are_green():  # no OS thread to deliver from; a green wait lets the flush run
        _flush_then_die(signum)
        return
    try:
        _deliver_after_the_flush(signum)
    except RuntimeError:  # no new thread (the interpreter is exiting): flush here, then die
        _flush_then_die(signum)


def _threads_are_green() -> bool:
    """Whether gevent or eventlet replaced the threading module (threads are greenlets)."""
    if "gevent.monkey" in sys.modules:
        from gevent import monkey

        if monkey.is_module_patched("threading"):
            return True
    if "eventlet.patcher" in sys.modules:
        from eventlet import patcher

        if patcher.is_monkey_patched("thread"):
            return True
    return False


def _deliver_after_the_flush(signum: int) -> None:
    """Start the flush and return at once; the signal comes back when the flush is over or out of time.

    The handler runs in the main thread between two bytecodes of whatever it was doing, which
    may hold the batch processor's export lock or a logging lock that the flush needs: waiting
    here would wait out the whole bound for nothing. Returning lets that code go on and let go.
    """
    import signal
    import threading

    flusher = _flusher
    if flusher is None or flusher.pid != os.getpid():
        _die_by(signum)
    from otel_launch._core.settings import read_setting

    timeout = read_setting("shutdown_timeout", os.environ)
    main = threading.main_thread().ident

    def wait_then_deliver() -> None:
        if not _wait_for_the_flush(flusher, timeout):
            _say_what_was_not_flushed(timeout)
        signal.pthread_kill(main, signum)  # to the main thread: it interrupts its wait, so the handler runs

    deliver = threading.Thread(target=wait_then_deliver, name="otel-launch-deliver", daemon=True)
    deliver.start()
    _deferred_signal.append(signum)
    flusher.requested.set()


def _die_by(signum: int) -> None:
    import signal

    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def _flush_then_die(signum: int) -> None:
    try:
        shutdown()
    finally:
        _die_by(signum)


def shutdown(timeout: float | None = None) -> bool:
    """Flush and shut down every provider, within ``timeout`` seconds in all.

    An export stuck on an unreachable collector is abandoned at the deadline, never waited
    out. Returns False when the deadline passed. Runs once per process; later calls wait
    for the first one's flush, within their own timeout and the first one's deadline.
    """
    flusher = _flusher
    if flusher is None:
        return True  # this process never built a provider
    if flusher.pid != os.getpid():
        # Forked without Python's fork hooks and never recorded since: what it holds is its parent's.
        if not renew_after_unannounced_fork(at_exit=True):
            return True
        flusher = _flusher
    if timeout is None:
        from otel_launch._core.settings import read_setting

        timeout = read_setting("shutdown_timeout", os.environ)
    done = _wait_for_the_flush(flusher, timeout)
    if not done:
        _say_what_was_not_flushed(timeout, flusher.flushing)
    if _deferred_signal and _in_the_main_thread():  # a SIGTERM waited for this flush: the process leaves by it
        _die_by(_deferred_signal[0])
    return done


def _wait_for_the_flush(flusher: _Flusher, timeout: float) -> bool:
    """Start the flush (once) and wait for it: within ``timeout``, and never past the deadline of
    the first wait in this process. One exit can pass through several of our paths (uWSGI's
    signal relay, then its atexit; a SIGTERM, then the exit it causes): together they wait the
    bound once, not once each."""
    import time

    now = time.monotonic()
    deadline = _flush_deadline.setdefault(flusher.pid, now + timeout)
    flusher.requested.set()
    return flusher.done.wait(max(0.0, min(timeout, deadline - now)))


_flush_deadline: dict[int, float] = {}  # pid -> when the first wait for its flush gives up


def _in_the_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _say_what_was_not_flushed(timeout: float, flushing: str) -> None:
    """One line: the bound passed; which flush it passed in (spans, log records, metrics: flushed in
    that order), how many spans and log records were still queued, and where to look."""
    once = f"said-{os.getpid()}"
    if once in _said:
        return
    _said.add(once)
    if os.environ.get("OTEL_CONFIG_FILE", "").strip():  # the file names the endpoints, not the variable
        where = f"the endpoint configured in {os.environ['OTEL_CONFIG_FILE']}"
    else:
        where = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "the default endpoint")
    queued: dict[str, int] = {}
    for processor, what in _batchers:
        try:
            batch = processor._batch_processor
            count = len(batch._queue) + getattr(batch._exporter, "in_flight", 0)  # queued, and being sent
        except Exception:  # the SDK's queue moved: the line goes without the count
            continue
        queued[what] = queued.get(what, 0) + count
    lost = " and ".join(f"{count} {what}" for what, count in queued.items() if count)
    lost = f", {lost} not exported" if lost else ""
    stage = f" (in the flush of {flushing})" if flushing else ""
    warn(f"gave up flushing telemetry after {timeout:g}s{stage}{lost}; is the collector at {where} reachable?")


_said: set[str] = set()


def renew_after_unannounced_fork(at_exit: bool = False) -> bool:
    """Make the providers this process inherited its own, once: it was forked without Python's
    fork hooks (uWSGI's workers, a C extension's fork), which is what they would have done.

    Renews, for every provider (ours and the app's we adopted): the resource's process-dependent
    attributes in place (so that the span that revealed the fork carries them too), the SDK's
    locks and export threads (``_handle_fork``, ``_at_fork_reinit``: tests/unit/runtime/test_compat.py
    checks them on each release), and this module's flusher. The exporters renew themselves
    (``sdk.parts.PerProcessExporter``). Returns False, with one warning line, when it cannot: telemetry
    is then off in this process.
    """
    global _flusher
    pid = os.getpid()
    if _flusher is None or _flusher.pid == pid:
        return True
    from otel_launch._runtime import _compat

    try:
        if not _compat.usable("unannounced-fork"):
            raise RuntimeError("the SDK's fork handlers are not found")
        _compat.renew_process_identity([_resource_of(provider) for provider in _providers])
        for provider in _providers:
            _renew_threads_of(provider, pid)
        for processor, _ in _batchers:
            processor._watch_first_record()
        _flusher = _Flusher()
    except Exception as exc:
        if at_exit:
            why = "it was forked without Python's fork hooks and exits before its first span"
        else:
            why = f"forked without Python's fork hooks, it could not take them over ({type(exc).__name__}: {exc})"
        warn(f"telemetry is off in this process (pid {pid}): {why}")
        _flusher = None
        return False
    return True


def _resource_of(provider: Any) -> Any:
    config = getattr(provider, "_sdk_config", None)  # a MeterProvider keeps it there
    return getattr(config, "resource", None) or getattr(provider, "_resource", None)


def _renew_threads_of(provider: Any, pid: int) -> None:
    """What the SDK's own fork handlers would have run in a child, for one provider and its parts."""
    handle_fork = getattr(provider, "_handle_fork", None)  # SDK 1.44+: fresh locks (and resource)
    if handle_fork is not None:
        handle_fork()
    from opentelemetry.util._once import Once

    span_processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())
    log_processors = getattr(getattr(provider, "_multi_log_record_processor", None), "_log_record_processors", ())
    for processor in (*span_processors, *log_processors):
        batch = getattr(processor, "_batch_processor", None)
        if batch is None:
            continue
        if batch._pid != pid:
            batch._at_fork_reinit()
        batch._bsp_reset_once = Once()  # so that the SDK notices the next unannounced fork too
    readers = getattr(provider, "_metric_readers", ())
    _renew_metric_locks(provider, others_may_run=True)
    for reader in readers:
        if getattr(reader, "_daemon_thread", None) is not None:
            reader._at_fork_reinit()


# How long a fork may wait for this process's exports in progress to end (see _let_exports_finish).
_FORK_WAITS_FOR_EXPORTS = 0.25
_held_at_fork: list[Any] = []


def _let_exports_finish() -> None:
    """Before a fork, wait (briefly) for the exports in progress, and hold their locks over it.

    A child forked while its parent's gRPC exporter was in a call found its own new channel
    stuck (gRPC's threads are not forked): its exit flush waited out the bound and lost what it
    held. An export to a live collector takes milliseconds, so a fork waits for one only until
    it has run for the bound, and never for an exporter whose last export failed: with a dead
    collector an export holds its lock through its retries, and every fork (each recycled
    gunicorn, uWSGI or Celery worker) would otherwise pay the whole bound for nothing.
    """
    import time

    now = time.monotonic()
    deadline = now + _FORK_WAITS_FOR_EXPORTS
    for lock, exporter in _export_locks():
        until = deadline
        if getattr(exporter, "failing", False):
            until = now  # taken if free, never waited for
        else:
            started = getattr(exporter, "export_started", None)
            if isinstance(started, float):
                until = min(deadline, started + _FORK_WAITS_FOR_EXPORTS)
        if lock.acquire(timeout=max(0.0, until - time.monotonic())):
            _held_at_fork.append(lock)


# How long a fork may wait for an exporter being built in another thread (see fork_waits_for_builds).
_FORK_WAITS_FOR_A_BUILD = 2.0
_build_lock: list[Any] = []  # () -> the lock this process builds its exporters under (sdk.parts)
_build_held_at_fork: list[Any] = []


def fork_waits_for_builds(lock_of_this_process: Any) -> None:
    """From now on, a fork waits (bounded) for an exporter being built: ``lock_of_this_process()``
    is the lock a thread holds while it builds one, imports included. Called at the first build.

    A build imports the exporter's modules in the export thread. A child forked meanwhile has
    them half-imported for good: the importing thread is not forked, and the child's own import
    returns the partial module (its new thread can reuse the dead one's id, which owns the
    module's import lock) or waits for that lock for ever; either way its every export failed
    ("partially initialized module ... has no attribute 'OTLPSpanExporter'").

    Registered at the first build rather than at start: the before-fork hooks registered last run
    first, and this one must run before those that take a lock a build needs (``logging``'s
    module lock: the modules a build imports make their loggers), or it would wait its whole
    bound for nothing. A build never waits for the collector (it imports and constructs; the
    first connection is the export's), so a fork does not pay a failing exporter's retries here
    (see _let_exports_finish); the wait is bounded all the same.
    """
    if _build_lock:
        return
    _build_lock.append(lock_of_this_process)
    os.register_at_fork(
        before=_let_builds_finish, after_in_parent=_release_builds, after_in_child=_build_held_at_fork.clear
    )


def _let_builds_finish() -> None:
    lock = _build_lock[0]()
    if lock.acquire(timeout=_FORK_WAITS_FOR_A_BUILD):
        _build_held_at_fork.append(lock)


def _release_builds() -> None:
    while _build_held_at_fork:
        _build_held_at_fork.pop().release()


def _release_exports() -> None:
    while _held_at_fork:
        _held_at_fork.pop().release()


def _export_locks() -> list[tuple[Any, Any]]:
    """(export lock, its exporter) of our batch processors and of every provider's metric readers."""
    locks = []
    for processor, _ in _batchers:
        batch = getattr(processor, "_batch_processor", None)
        lock = getattr(batch, "_export_lock", None)
        if lock is not None:
            locks.append((lock, getattr(batch, "_exporter", None)))
    for provider in _providers:
        for reader in getattr(provider, "_metric_readers", ()):
            lock = getattr(reader, "_export_lock", None)
            if lock is not None:
                locks.append((lock, getattr(reader, "_exporter", None)))
    return locks


def _after_fork_in_child() -> None:
    global _flusher
    _held_at_fork.clear()  # the child renews these locks (the SDK the batch processors', we the readers')
    _deferred_signal.clear()  # a parent's signal is not the child's
    # Threads do not survive fork: the child gets its own flusher for its own exit.
    if _flusher is not None:
        _flusher = _Flusher()
        for provider in _providers:
            _renew_metric_locks(provider)


def _renew_metric_locks(provider: Any, others_may_run: bool = False) -> None:
    """Fresh locks for a meter provider's collection, measurements and export, in a forked child.

    The SDK renews its MeterProvider's own locks at fork, not those a collection holds (its
    measurement consumer's, each reader storage's and view match's, each reader's export lock):
    a child forked while the parent's metric thread collected or exported had them held by a
    thread it does not have, and its exit flush waited out the whole bound on them (a Celery
    pool child recycled after one task: "gave up flushing telemetry after 5s", now and then,
    under load). Nor those a measurement holds (each aggregation's and its exemplar
    reservoir's, each meter's instrument registration): a child forked while another thread of
    the parent recorded waited for good at its first record with the same attributes.

    Only a lock found held is replaced: one that is free is nobody's, and stays. Right after a
    fork only the forking thread runs, so a held lock is a parent thread's. A process forked
    without the fork hooks renews at its first span, when threads of its own may run
    (``others_may_run``): a lock one of them holds is let go of within microseconds, so a lock
    still held after a short wait is a parent thread's, and only then replaced (a replaced lock
    one of the child's threads held would let two threads into what it guards).
    """
    from otel_launch._runtime import _compat

    consumer = getattr(provider, "_measurement_consumer", None)
    if consumer is None or not _compat.usable("metric-locks-at-fork"):
        return
    wait = _A_LIVE_THREAD_LETS_GO if others_may_run else 0.0
    try:
        _renew_if_held(consumer, "_lock", wait)
        for storage in consumer._reader_storages.values():
            _renew_if_held(storage, "_lock", wait)
            for matches in storage._instrument_view_instrument_matches.values():
                for match in matches:
                    _renew_if_held(match, "_lock", wait)
                    for aggregation in list(match._attributes_aggregation.values()):
                        _renew_if_held(aggregation, "_lock", wait)
                        _renew_if_held(getattr(aggregation, "_reservoir", None), "_lock", wait)  # its exemplars'
        for meter in list(getattr(provider, "_meters", {}).values()):
            _renew_if_held(meter, "_instrument_registration_lock", wait)
        for reader in getattr(provider, "_metric_readers", ()):
            _renew_if_held(reader, "_export_lock", wait)
    except Exception as exc:  # the SDK's own behaviour: a collection held at fork may hold this child
        warn(f"could not renew the metric locks after fork ({type(exc).__name__}: {exc})")


_A_LIVE_THREAD_LETS_GO = 0.05  # seconds: what a metric lock is held for is a few dict operations


def _renew_if_held(part: Any, name: str, wait: float) -> None:
    """Replace ``part.<name>`` with a new lock of its kind if it is held (see _renew_metric_locks)."""
    lock = getattr(part, name, None)
    if lock is None:
        return
    if lock.acquire(timeout=wait) if wait else lock.acquire(blocking=False):
        lock.release()
        return
    import threading

    setattr(part, name, threading.RLock() if "RLock" in type(lock).__name__ else threading.Lock())


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
