"""How the runtime speaks: one-line warnings, and exporter logs that cannot flood the app or leak.

Every line goes through the masker (``otel_launch._core.masking.mask_text``): URLs lose their
passwords and query values, and the values of the export headers configured in this process
(:func:`header_secrets`: tokens, mostly) are hidden wherever a library's message repeats them.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from typing import Any

_HEADER_VARS = (
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
)
_secrets: dict[int, tuple[str, ...]] = {}


def header_secrets() -> tuple[str, ...]:
    """The header values of this process's export configuration, as ``mask_text`` hides them
    (``values=``): read once per process."""
    pid = os.getpid()
    found = _secrets.get(pid)
    if found is None:
        from otel_launch._core.masking import header_values, secret_values

        found = _secrets[pid] = secret_values(header_values(os.environ.get(name, "") for name in _HEADER_VARS))
    return found


def warn(message: str) -> None:
    """One line on stderr, outside the app's logging so its configuration is never touched."""
    # Imported at the first line said, not with this module: it is read at every interpreter start.
    from otel_launch._core.masking import mask_text

    try:
        sys.stderr.write(f"otel-launch: warning: {mask_text(message, values=header_secrets())}\n")
        sys.stderr.flush()
    except Exception:  # a closed stderr must not turn a warning into a crash
        pass


# The words the exporters and batch processors name a signal by in a record's arguments -> the signal.
_SIGNAL_OF_WORD = {
    "traces": "traces",
    "spans": "traces",
    "span": "traces",
    "metrics": "metrics",
    "logs": "logs",
    "log": "logs",
}


def _signal_of(record: Any) -> str:
    """Which signal a record is about: the exporters of all signals share loggers and templates,
    and name the signal in an argument ("traces", "metrics", "logs")."""
    args = record.args if isinstance(record.args, tuple) else ()
    for arg in args:
        if isinstance(arg, str):
            signal = _SIGNAL_OF_WORD.get(arg.lower())
            if signal:
                return signal
    return ""


class RateLimitFilter:
    """Lets one record per logger, message template and signal through per interval; scrubs it.

    A dead collector makes the exporters log on every batch and retry; users need to know
    once, not thousands of times. Trace and metric exporters log with the same logger and
    template: each signal is counted apart, so one's retries never hide the other's.
    """

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last: dict[tuple[str, str, str], float] = {}
        self._suppressed: dict[tuple[str, str, str], int] = {}

    def filter(self, record: Any) -> bool:
        if str(record.msg).startswith("Queue full, dropping"):
            return False  # said once, without a count; DropReport says how many, once a minute
        key = (record.name, str(record.msg), _signal_of(record))
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        from otel_launch._core.masking import mask_text  # see warn()

        message = mask_text(record.getMessage(), values=header_secrets())
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" ({suppressed} similar messages in the last {self.interval:g}s suppressed)"
        record.msg, record.args = message, None
        return True


class DropReport:
    """Counts what a full export queue drops, and says so: at the first drop, then at most once
    per interval with the number dropped since, and at shutdown for the rest.

    The SDK says "Queue full, dropping Span." once per process, with no number: with the
    collector down, an operator cannot tell a lost span from a lost hour.
    """

    def __init__(self, what: str, interval: float = 60.0) -> None:
        import threading  # not at interpreter start: this module is imported then

        self.what = what  # "spans", "log records"
        self.interval = interval
        self.total = 0
        self._count = 0
        self._since: float | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def dropped(self, count: int = 1) -> None:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's drops are the parent's to report
                self._pid, self._count, self._since, self.total = os.getpid(), 0, None, 0
            self.total += count
            now = time.monotonic()
            if self._since is None:
                self._since = now
                warn(
                    f"the export queue is full, dropping {self.what} (is the collector reachable?); "
                    f"the number dropped follows at most once every {self.interval:g} s"
                )
                return
            self._count += count
            if now - self._since >= self.interval:
                self._report(now)

    def _report(self, now: float) -> None:
        if self._count and self._since is not None:
            warn(f"dropped {self._count} {self.what} in the last {now - self._since:.0f} s: the export queue is full")
        self._count, self._since = 0, now

    def flush(self) -> None:
        """Report what was dropped since the last line (at shutdown)."""
        with self._lock:
            if self._pid == os.getpid():
                self._report(time.monotonic())


_filter = RateLimitFilter()
_filtered: set[str] = set()


def rate_limit(*logger_names: str) -> None:
    """Attach the shared rate limit to these loggers (idempotent)."""
    import logging

    for name in logger_names:
        if name not in _filtered:
            _filtered.add(name)
            logging.getLogger(name).addFilter(_filter)
