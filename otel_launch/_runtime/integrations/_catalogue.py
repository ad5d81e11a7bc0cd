"""Every other installed contrib instrumentation, each run when the app imports its library.

``opentelemetry-instrument`` loads every ``opentelemetry_instrumentor`` entry point at
interpreter start (~680 ms with a dozen installed). Here each one becomes an
:class:`~otel_launch._runtime.integrations.Integration` whose trigger is the top-level module
of the library it instruments: the distribution its ``instruments`` (or ``instruments-any``)
requirements name, then that distribution's ``top_level.txt`` or ``RECORD``; with no
requirement (a standard-library instrumentation), the entry point's name.

Finding them is a scan of the ``*.dist-info`` folders on ``sys.path`` (``_dist_info.py``,
cheaper than ``importlib.metadata``). The launcher scans once, keeps the result in the
user's cache folder until a folder holding distributions changes, and hands it to its
children in ``_OTEL_LAUNCH_CATALOGUE``; a process that gets none, or one made for another
interpreter, does the same for itself. The HTTP clients otel-launch ships are instrumented at
their first call rather than on import (``http.py``).

At activation, in the process that imported the library: the entry point is skipped when
disabled (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``), or with one warning line when the
installed library is outside the instrumentor's supported range (upstream's own check).
Our own integrations come first: their entry points (and ``logging``, which our log
correlation replaces) are never loaded from the catalogue; nor is ``system_metrics``.
"""

from __future__ import annotations

import os
import sys

from otel_launch._runtime.integrations import Integration, is_disabled

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from types import ModuleType

ENV_VAR = "_OTEL_LAUNCH_CATALOGUE"
GROUP = "opentelemetry_instrumentor"
# Entry points otel-launch never loads: ours replace them (see the registry), and
# system_metrics has no library import to wait for (it would have to run at start).
OURS = frozenset(
    {"django", "celery", "redis", "sqlite3", "psycopg", "psycopg2", "threading", "logging", "system_metrics"}
)
# Standard-library instrumentations name no requirement; their trigger is the module they
# patch, when it is not the entry point's name (``import urllib`` alone sends nothing).
STDLIB_TRIGGERS = {"urllib": "urllib.request"}
# Instrumented at their first call, not at import; calls made outside any span left untraced.
OUTSIDE_SPANS_UNTRACED = frozenset({"requests", "urllib", "urllib3", "httpx"})


class Entry:
    """One instrumentor entry point: what to load, what triggers it, what it supports."""

    __slots__ = ("name", "value", "triggers", "instruments", "instruments_any", "done")

    def __init__(self, name: str, value: str, triggers: list[str], instruments: list[str], instruments_any: list[str]):
        self.name, self.value, self.triggers = name, value, triggers
        self.instruments, self.instruments_any = instruments, instruments_any
        self.done = False

    def encode(self) -> str:
        fields = [self.name, self.value, "+".join(self.triggers)]
        fields += [f"r:{req}" for req in self.instruments] + [f"a:{req}" for req in self.instruments_any]
        return " ".join(fields)

    @classmethod
    def decode(cls, text: str) -> Entry:
        name, value, triggers, *reqs = text.split(" ")
        return cls(
            name,
            value,
            triggers.split("+"),
            [req[2:] for req in reqs if req.startswith("r:")],
            [req[2:] for req in reqs if req.startswith("a:")],
        )


class CatalogueIntegration(Integration):
    """An entry point's instrumentor, run once whichever of its triggers is imported first."""

    __slots__ = ("entry",)

    def __init__(self, entry: Entry, trigger: str) -> None:
        super().__init__(entry.name, trigger, "_catalogue")
        self.entry = entry

    def _activate(self, imported: ModuleType) -> None:  # after the registry's gevent deferral
        entry = self.entry
        if entry.done:
            return
        entry.done = True
        if is_disabled(entry.name):
            return
        if entry.name in OUTSIDE_SPANS_UNTRACED:  # an HTTP client of ours: at its first call
            from otel_launch._runtime.integrations import http

            http.on_first_call(entry.name, lambda: activate(entry))
            return
        activate(entry)


def activate(entry: Entry) -> bool:
    """Check the supported range, then instrument. True when this call instrumented."""
    import importlib

    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

    from otel_launch._runtime._log import warn
    from otel_launch._runtime.integrations._instrumentor import instrument_once

    conflict = get_dependency_conflicts(entry.instruments, entry.instruments_any or None)
    if conflict is not None:
        found = conflict.found or ", ".join(conflict.found_any or ())
        if found:  # installed at a version the instrumentor does not support
            required = conflict.required or " or ".join(conflict.required_any or ())
            warn(f"{entry.name} is not instrumented: its instrumentation supports {required}, installed: {found}")
        return False  # not installed at all: nothing to instrument, as upstream decides
    module, _, attribute = entry.value.partition(":")
    try:
        target: object = importlib.import_module(module.strip())
        for part in attribute.strip().split("."):
            target = getattr(target, part)
        instrumentor = target()  # type: ignore[operator]
        if not hasattr(instrumentor, "is_instrumented_by_opentelemetry"):  # not a BaseInstrumentor
            instrumentor.instrument()  # as upstream's distro calls it
        elif not instrument_once(instrumentor, skip_dep_check=True):
            return False  # the app instrumented it itself: its choice stands
    except ModuleNotFoundError:
        return False  # a library it needs is not installed: upstream skips these silently too
    if entry.name in OUTSIDE_SPANS_UNTRACED:
        from otel_launch._runtime.integrations import http

        http.untraced_outside_spans(entry.name)
    return True


# -- handing the scan to the launched processes -------------------------------------------------


def interpreter_key() -> str:
    # A scan holds for one interpreter and one environment: a child of another one rescans.
    return f"{sys.version_info[0]}.{sys.version_info[1]}:{sys.prefix};"


def encode(entries: list[Entry]) -> str:
    """The value of ``_OTEL_LAUNCH_CATALOGUE`` for processes of this interpreter."""
    return interpreter_key() + ";".join(entry.encode() for entry in entries)


def decode(body: str) -> list[Entry]:
    return [Entry.decode(text) for text in body.split(";")] if body else []


_found: list[Entry] | None = None


def entries() -> list[Entry]:
    """This process's catalogue (once): the launcher's hand-off when it is for this
    interpreter, else the cached scan, else a scan of our own."""
    global _found
    if _found is None:
        handed = os.environ.get(ENV_VAR, "")
        key = interpreter_key()
        if handed.startswith(key):
            _found = decode(handed[len(key) :])
        else:
            from otel_launch._core.catalogue import cached_scan

            _found = cached_scan(sys.path)
    return _found


def for_child_env() -> str:
    """What the launcher hands its command: this scan, for processes of its interpreter."""
    return encode(entries())


def integrations(found: list[Entry]) -> list[CatalogueIntegration]:
    return [CatalogueIntegration(entry, trigger) for entry in found for trigger in entry.triggers]
