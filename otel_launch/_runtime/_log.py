"""How the runtime speaks: one-line warnings, and exporter logs that cannot flood the app."""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from typing import Any


def warn(message: str) -> None:
    """One line on stderr, outside the app's logging so its configuration is never touched."""
    try:
        from otel_launch._settings import mask_urls_in

        sys.stderr.write(f"otel-launch: warning: {mask_urls_in(message)}\n")
        sys.stderr.flush()
    except Exception:  # a closed stderr must not turn a warning into a crash
        pass


class RateLimitFilter:
    """Lets one record per logger and message template through per interval; masks URLs.

    A dead collector makes the exporters log on every batch and retry; users need to know
    once, not thousands of times.
    """

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: Any) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        from otel_launch._settings import mask_urls_in

        message = mask_urls_in(record.getMessage())
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" ({suppressed} similar messages in the last {self.interval:g}s suppressed)"
        record.msg, record.args = message, None
        return True


_filter = RateLimitFilter()
_filtered: set[str] = set()


def rate_limit(*logger_names: str) -> None:
    """Attach the shared rate limit to these loggers (idempotent)."""
    import logging

    for name in logger_names:
        if name not in _filtered:
            _filtered.add(name)
            logging.getLogger(name).addFilter(_filter)
