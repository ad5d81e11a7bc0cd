"""otel-launch bootstrap: runs at interpreter start in every Python process the launcher starts.

This directory is first on PYTHONPATH, so this file shadows any other ``sitecustomize``;
it runs that one too, after setting up telemetry. Nothing here may break the app: on any
failure the app runs uninstrumented and one warning line says why.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# The same names as otel_launch._runtime.PROVIDER_VARS, written out: this file must work
# exactly when otel_launch cannot be imported.
_PROVIDER_VARS = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER", "OTEL_PYTHON_LOGGER_PROVIDER")


def _start_telemetry():
    try:
        from otel_launch._runtime import start
    except Exception as exc:  # e.g. a different interpreter that has no otel-launch installed
        for name in _PROVIDER_VARS:
            if os.environ.get(name) == "otel_launch":
                del os.environ[name]  # or the OpenTelemetry API would fail to find our providers
        sys.stderr.write(
            f"otel-launch: warning: telemetry is off in this process ({sys.executable}): "
            f"cannot import otel_launch ({type(exc).__name__}: {exc})\n"
        )
        return
    start()


def _run_shadowed_sitecustomize():
    """Import the next ``sitecustomize`` on sys.path (the user's or the distribution's)."""
    try:  # what importlib.machinery re-exports, loaded with the interpreter: importlib is not (nor warnings)
        from _frozen_importlib_external import PathFinder
    except ImportError:
        from importlib.machinery import PathFinder

    search = [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]
    spec = PathFinder.find_spec("sitecustomize", search)
    if spec is None or spec.loader is None:
        return
    ours = sys.modules.get("sitecustomize")
    module = spec.loader.create_module(spec) or type(sys)(spec.name)
    module.__spec__, module.__loader__ = spec, spec.loader
    if spec.has_location:
        module.__file__, module.__cached__ = spec.origin, spec.cached
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        # site.py reports a failing sitecustomize this way and carries on; so do we.
        sys.modules["sitecustomize"] = ours
        sys.stderr.write(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(exc).__name__}: {exc}\n")


_start_telemetry()
_run_shadowed_sitecustomize()
