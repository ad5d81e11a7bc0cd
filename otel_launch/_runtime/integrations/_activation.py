"""How one integration step runs: activated by the import of its trigger, guarded so that whatever
it raises becomes one warning line and its fallback, skipped when the disabled list names it."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

# The package of the integration modules, whose names the steps give relative to it.
PACKAGE = __name__.rpartition(".")[0]


def _disabled() -> set[str]:
    if not os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").strip():
        return set()  # unset, as in most processes: the settings table is not imported to learn it
    from otel_launch._core.settings import read_setting

    return set(read_setting("disabled_instrumentations", os.environ) or ())


def is_disabled(name: str) -> bool:
    """Whether OTEL_PYTHON_DISABLED_INSTRUMENTATIONS names this instrumentation, or ``*`` (all)."""
    disabled = _disabled()
    return name in disabled or "*" in disabled


class Integration:
    """An instrumentation step, activated by the import of its ``trigger`` module.

    ``name`` is as listed in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (one name may have several
    steps); ``module`` is ours, under integrations/, and its function ``hook(imported)`` runs.
    When the step cannot run (see :func:`guard`), ``fallback`` serves instead: a contrib
    instrumentor class (``"opentelemetry.instrumentation.x:XInstrumentor"``) or a function of ours
    (``"module:function"`` under integrations/, called with the imported module, returning what now
    serves); without one, ``without`` says what the app goes without.
    """

    __slots__ = ("name", "trigger", "module", "hook", "fallback", "without")

    def __init__(
        self,
        name: str,
        trigger: str,
        module: str,
        hook: str = "on_import",
        *,
        fallback: str | None = None,
        without: str | None = None,
    ) -> None:
        self.name, self.trigger, self.module, self.hook = name, trigger, module, hook
        self.fallback, self.without = fallback, without

    def activate(self, imported: ModuleType) -> None:
        from otel_launch._runtime import _green

        def start() -> None:
            fallback = (lambda: run_fallback(self.fallback, imported)) if self.fallback else None
            guard(self.name, lambda: self._activate(imported), fallback=fallback, without=self.without)

        # An import made by gevent's monkey-patching waits for its end (see _green).
        if not _green.deferred_while_patching(start):
            start()

    def _activate(self, imported: ModuleType) -> None:
        # The disabled list is read here, not at start-up: only a process that imports the
        # library pays for reading settings.
        if not is_disabled(self.name):
            from otel_launch._runtime import _compat

            _compat.check_floor(self.trigger)  # an older Django, Celery or kombu: the fallback serves
            # importlib here, not at interpreter start: it brings warnings in, in every process
            from importlib import import_module

            getattr(import_module(f"{PACKAGE}.{self.module}"), self.hook)(imported)


def guard(
    name: str,
    step: Callable[[], object],
    *,
    fallback: Callable[[], str] | None = None,
    without: str | None = None,
) -> bool:
    """Run one instrumentation step; whatever it raises becomes one warning line, and the fallback.

    The one place where an integration's failure is kept out of the app, whatever the cause: a
    name gone from a release, an import error, a changed signature, a library older than
    otel-launch supports, anything raised while activating. The line names the integration, the
    cause (with where it was raised and the library's version) and what serves instead: the
    fallback's answer, or ``without``. Each line is said once per process. True when the step ran.
    """
    try:
        step()
        return True
    except Exception as exc:
        if _the_app_is_importing_an_instrumentation():
            return False  # it instruments this library itself (its import of the library woke us)
        from otel_launch._runtime._compat import OlderThanSupported

        cause = _cause(name, exc)
        older = isinstance(exc, OlderThanSupported)
    instead = "the contrib's instrumentation serves instead of otel-launch's own" if older else without
    if fallback is not None:
        try:
            served = fallback()
        except Exception as exc:  # nothing left to serve
            instead = f"{name} runs without telemetry (its fallback failed too: {_cause(name, exc)})"
        else:
            instead = instead or served
    line = f"{name}: {cause}; {instead or f'{name} runs without telemetry'}"
    if line not in _said:
        _said.add(line)
        from otel_launch._runtime._log import warn

        warn(line)
    return False


def _the_app_is_importing_an_instrumentation() -> bool:
    """An app's ``from opentelemetry.instrumentation.psycopg import ...`` imports psycopg, whose hook
    then found the contrib module half-initialized: "could not instrument psycopg ... partially
    initialized module" was logged, falsely, since the app's own instrumentor works."""
    import sys

    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
        if name.startswith("opentelemetry.instrumentation.")
    )


_said: set[str] = set()  # the lines said: one cause with one outcome is said once


def _cause(name: str, exc: BaseException) -> str:
    """The exception in one line, with where it was raised (the innermost frame) and the library's version."""
    import traceback

    from otel_launch._runtime._compat import OlderThanSupported, library_version

    if isinstance(exc, OlderThanSupported):
        return str(exc)

    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    text = text if len(text) <= 300 else text[:299] + "…"
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    where = ""
    if frames:
        filename = frames[-1].filename
        for marker in ("site-packages/", "dist-packages/", "lib/python"):
            if marker in filename:
                filename = filename.rpartition(marker)[2]
                break
        where = f" at {filename}:{frames[-1].lineno}"
    version = library_version(name)
    return f"{text}{where}{f' ({name} {version})' if version else ''}"


def run_fallback(spec: str, imported: ModuleType) -> str:
    """Run an integration's fallback (see :class:`Integration`); returns what now serves."""
    module_name, _, attribute = spec.partition(":")
    if not module_name.startswith("opentelemetry."):
        module_name = f"{PACKAGE}.{module_name}"
    from importlib import import_module

    target = getattr(import_module(module_name), attribute)
    if not isinstance(target, type):
        return target(imported)
    from otel_launch._runtime.integrations._instrumentor import instrument_once

    instrument_once(target())
    return f"the contrib's {module_name.rpartition('.')[2]} instrumentation serves instead"
