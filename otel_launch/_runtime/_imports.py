"""Run a callback right after a module is imported, so integrations load only when needed.

A meta-path finder watches a handful of module names. For a watched module it asks the
rest of ``sys.meta_path`` for the spec and wraps that loader's ``exec_module`` on the
instance, so ``module.__loader__`` stays the real loader (resources, source lookup and
reloading keep working).
"""

from __future__ import annotations

import sys

from otel_launch._runtime._log import warn

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    Hook = Callable[[ModuleType], None]


def _run_hooks(name: str, module: ModuleType, hooks: list[Hook]) -> None:
    for hook in hooks:
        try:
            hook(module)
        except Exception as exc:
            warn(f"could not instrument {name}, it runs without telemetry ({type(exc).__name__}: {exc})")


class _PostImportFinder:
    def __init__(self) -> None:
        self.hooks: dict[str, list[Hook]] = {}
        self._resolving: set[str] = set()

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        # Called for every import not yet in sys.modules: keep the common case one dict lookup.
        if fullname not in self.hooks or fullname in self._resolving:
            return None
        import importlib.util

        self._resolving.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._resolving.discard(fullname)
        loader = spec.loader if spec is not None else None
        # Builtin and frozen loaders are classes shared by many modules: never patch those.
        if loader is None or isinstance(loader, type) or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_hook(module: ModuleType) -> None:
            del loader.exec_module  # back to the class's own method
            # Taken when the module executes, not when its spec is found: a look-up alone
            # (Django's importlib.util.find_spec for an app's models module) executes nothing.
            hooks = self.hooks.pop(fullname, [])
            try:
                exec_module(module)
            except BaseException:
                self.hooks.setdefault(fullname, []).extend(hooks)  # a later import may succeed
                raise
            _run_hooks(fullname, module, hooks)

        loader.exec_module = exec_then_hook  # type: ignore[method-assign]
        return spec


_finder = _PostImportFinder()


def when_imported(name: str, hook: Hook) -> None:
    """Call ``hook(module)`` once ``name`` is imported (now, if it already is)."""
    if name in sys.modules:
        _run_hooks(name, sys.modules[name], [hook])
        return
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    _finder.hooks.setdefault(name, []).append(hook)
