"""uWSGI: every worker its own telemetry, flushed however uWSGI makes it leave.

uWSGI loads the app in its master and forks the workers from C, so Python's fork hooks do not
run there (unless ``--py-call-osafterfork``): the providers a worker inherits still believe
they belong to the master. uWSGI calls ``uwsgi.post_fork_hook`` in each worker it forks; ours
(chained with the app's, and put into ``uwsgidecorators``' chain when the app imports it) renews
them there. Whatever the app does to that hook, ``_lifecycle``'s general guard renews them at
the worker's first span (``_lifecycle.renew_after_unannounced_fork``).

How a worker leaves:

- idle, or at the end of its request (``--max-requests``, SIGHUP's graceful reload, the end
  of ``--threads``' last request): uWSGI runs ``uwsgi.atexit`` and Python's atexit handlers,
  ``_lifecycle.shutdown`` among them;
- killed by SIGINT or SIGQUIT at the master (``--stop``: each worker gets SIGINT) or by the
  master's SIGTERM (2.0.x: a brutal reload; each worker gets SIGTERM): uWSGI's C handler exits
  at once, and skips every atexit handler of a worker busy in a request (a response already sent
  counts), losing what it queued. So, in a worker, SIGINT and SIGTERM go first to Python's own
  signal handler, which only wakes a helper thread (through ``signal.set_wakeup_fd``): it
  flushes, within the shutdown bound, while the worker's code goes on, then puts uWSGI's handler
  back and raises the signal again. uWSGI then does what it always does.

uWSGI installs its handlers in the worker after the post-fork hook and after a lazy app's
load, and no Python code of ours runs in between; so the main-thread part (the handler and the
wakeup descriptor) is prepared in the post-fork hook or at a lazy app's load, and the C-level
swap is made at the worker's first span or log record, from whichever thread records it, with
``sigaction`` through ctypes (the C handler is saved and restored as it is, byte for byte).
"""

from __future__ import annotations

import os
import sys

from otel_launch._runtime import _lifecycle
from otel_launch._runtime._log import warn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

_RELAYED = ("SIGINT", "SIGTERM")
_ACTION_BYTES = 512  # more than any libc's struct sigaction: saved and restored whole, never read
_state: dict[str, Any] = {}  # per process: pid, the wakeup pipe, the actions to swap


def running_under_uwsgi() -> ModuleType | None:
    """The ``uwsgi`` module when this process is uWSGI's (the module exists only there)."""
    module = sys.modules.get("uwsgi")
    return module if module is not None and hasattr(module, "worker_id") else None


def on_first_provider() -> None:
    """A provider was built in this process: in uWSGI's master, see that each worker renews it;
    in a worker loading its own app (``--lazy-apps``), prepare the flush on SIGINT and SIGTERM."""
    uwsgi = running_under_uwsgi()
    if uwsgi is None:
        return
    _lifecycle.on_first_record(_swap_in_our_handlers)
    if _worker_id(uwsgi) == 0:
        _chain_post_fork_hook(uwsgi)
    else:
        _prepare()


def _worker_id(uwsgi: ModuleType) -> int:
    try:
        return int(uwsgi.worker_id())
    except Exception:
        return 0


def _chain_post_fork_hook(uwsgi: ModuleType) -> None:
    previous = getattr(uwsgi, "post_fork_hook", None)
    if getattr(previous, "_otel_launch", False):
        return

    def post_fork_hook() -> None:
        in_worker()
        if previous is not None:
            previous()

    post_fork_hook._otel_launch = True  # type: ignore[attr-defined]
    uwsgi.post_fork_hook = post_fork_hook
    decorators = sys.modules.get("uwsgidecorators")
    if decorators is not None:
        on_decorators_import(decorators)


def on_decorators_import(decorators: ModuleType) -> None:
    """``import uwsgidecorators`` replaces ``uwsgi.post_fork_hook`` with its chain of
    ``@postfork`` functions: ours goes first in that chain (the app's run on renewed providers)."""
    chain = getattr(decorators, "postfork_chain", None)
    if isinstance(chain, list) and in_worker not in chain:
        chain.insert(0, in_worker)


def in_worker() -> None:
    """uWSGI's post-fork hook, in a worker (or a mule, a spooler) just forked from the master."""
    if _lifecycle.renew_after_unannounced_fork():
        _prepare()


def _prepare() -> None:
    """Main thread, before uWSGI installs the worker's handlers: Python's handler for SIGINT and
    SIGTERM, the wakeup pipe, and the helper thread that acts on it."""
    import signal
    import threading

    if _state.get("pid") == os.getpid() or threading.current_thread() is not threading.main_thread():
        return
    try:
        libc = _libc()
        read, write = os.pipe()
        os.set_blocking(write, False)
        previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        if previous_fd != -1:  # the app's: it stays, and uWSGI's handlers stay as they are
            signal.set_wakeup_fd(previous_fd)
            os.close(read)
            os.close(write)
            return
        ours = {}
        for name in _RELAYED:
            signum = getattr(signal, name)
            signal.signal(signum, _in_the_main_thread)
            ours[signum] = _action(libc, signum)
    except Exception as exc:
        warn(f"uWSGI: a worker killed in a request may lose its telemetry ({type(exc).__name__}: {exc})")
        return
    _state.clear()
    _state.update(pid=os.getpid(), main=threading.get_ident(), read=read, write=write, ours=ours, theirs={})
    threading.Thread(target=_relay, args=(read,), name="otel-launch-uwsgi-signals", daemon=True).start()


def _in_the_main_thread(signum: int, frame: Any) -> None:
    """Python's handler runs here when the main thread next runs Python: the helper acts."""


def _swap_in_our_handlers() -> None:
    """At the worker's first record: uWSGI's handlers are in place; save them, put ours."""
    if _state.get("pid") != os.getpid() or _state["theirs"]:
        return
    libc = _libc()
    for signum, ours in _state["ours"].items():
        theirs = _action(libc, signum)
        if theirs[: _handler_bytes()] == ours[: _handler_bytes()]:
            continue  # not replaced (yet): nothing to give back
        _state["theirs"][signum] = theirs
        _set_action(libc, signum, ours)


def _relay(read: int) -> None:
    """The helper thread: on SIGINT or SIGTERM, flush (bounded), give uWSGI its handler back and
    raise the signal again."""
    import signal

    while True:
        try:
            received = os.read(read, 64)
        except OSError:
            return
        signums = [signum for signum in received if signum in _state.get("ours", {})]
        if not signums:
            continue
        _lifecycle.shutdown()
        libc = _libc()
        for signum in _state["ours"]:
            theirs = _state["theirs"].get(signum)
            if theirs is not None:
                _set_action(libc, signum, theirs)
            else:  # signalled before uWSGI put its handler in place: the default, which ends the worker
                libc.signal(signum, 0)
        # To the main thread, where uWSGI's handler runs as it would have: its exit runs the
        # atexit handlers (Python's finalization among them), which no other thread may do.
        signal.pthread_kill(_state["main"], signums[0])
        return


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _handler_bytes() -> int:
    import ctypes

    return ctypes.sizeof(ctypes.c_void_p)  # the handler's address comes first in struct sigaction


def _action(libc: Any, signum: int) -> bytes:
    import ctypes

    buffer = ctypes.create_string_buffer(_ACTION_BYTES)
    if libc.sigaction(signum, None, buffer) != 0:
        raise OSError(ctypes.get_errno(), f"sigaction({signum})")
    return buffer.raw


def _set_action(libc: Any, signum: int, action: bytes) -> None:
    import ctypes

    buffer = ctypes.create_string_buffer(action, _ACTION_BYTES)
    if libc.sigaction(signum, buffer, None) != 0:
        raise OSError(ctypes.get_errno(), f"sigaction({signum})")
