"""uvicorn: the spans of its last requests flushed before it dies by its signal.

uvicorn stops gracefully on SIGTERM or SIGINT, then raises the same signal again to die by it,
which skips atexit and with it the exit flush (``_lifecycle.shutdown``); so the flush runs when
its graceful shutdown is over, before the signal is raised again. Nothing is recorded here: the
requests are the ASGI instrumentation's.
"""

from __future__ import annotations

from otel_launch._runtime import _lifecycle

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


def on_import(server_module: ModuleType) -> None:
    """Flush when uvicorn's graceful shutdown is over, before it raises the signal again."""
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
                    _lifecycle.shutdown()

    server_class.capture_signals = flushing_capture_signals
