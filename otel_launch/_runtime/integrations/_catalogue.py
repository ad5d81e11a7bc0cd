"""Every other installed contrib instrumentation (the core's catalogue), each run when the app
imports its library.

Each entry point becomes an :class:`~otel_launch._runtime.integrations._activation.Integration`
per trigger module (``otel_launch._core.catalogue.Entry.triggers``). The HTTP clients otel-launch
ships are instrumented at their first call rather than on import (``http.py``).

At activation, in the process that imported the library: the entry point is skipped when
disabled (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``), or with one warning line when the
installed library is outside the instrumentor's supported range (upstream's own check).
Our own integrations come first: their entry points (and ``logging``, which our log
correlation replaces) are never loaded from the catalogue; nor is ``system_metrics``.
"""

from __future__ import annotations

from otel_launch._runtime.integrations._activation import Integration, is_disabled

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from types import ModuleType

    from otel_launch._core.catalogue import Entry

# Instrumented at their first call, not at import; calls made outside any span left untraced.
OUTSIDE_SPANS_UNTRACED = frozenset({"requests", "urllib", "urllib3", "httpx"})


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


def integrations(found: list[Entry]) -> list[CatalogueIntegration]:
    return [CatalogueIntegration(entry, trigger) for entry in found for trigger in entry.triggers]
