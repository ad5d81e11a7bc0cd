"""Django's reloader (``runserver``): its serving child flushes before the reloader ends it.

Django's reloader (runserver's parent process) kills its serving child 0.25 s after
Ctrl-C, and at once on SIGTERM (its handler exits, and subprocess.run kills the child on
the way out), while the child flushes after its own exit work: killed, it would lose what it
had not sent. Ctrl-C reaches
the whole foreground group, so the reloader may wait for the child to leave by itself;
SIGTERM reaches the reloader alone (docker stop, a process manager), so it is passed on
to the child, which exits on it as Django makes it. Either way the reloader waits for at
most the child's flush bound, then does what Django does; a second signal stops at once.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


def on_autoreload_import(autoreload: ModuleType) -> None:
    """Make ``restart_with_reloader`` wait, bounded, for its child's flush (see the module's docstring)."""
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
            from otel_launch._core.settings import read_setting

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
