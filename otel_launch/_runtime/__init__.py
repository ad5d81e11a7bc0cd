"""What runs inside the launched process. Importing this package must stay cheap.

``start()`` only installs hooks: the SDK is built on a process's first request for a
provider, and each instrumentation is loaded when the app imports the library it
instruments. A process that never uses either pays almost nothing.
"""

from __future__ import annotations

import os

from otel_launch._core import NAME_FROM_COMMAND
from otel_launch._runtime._log import warn

# The OpenTelemetry API builds its global providers from these entry points on first use
# (see pyproject.toml), and leaves them alone if the app sets its own provider first.
PROVIDER_VARS = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER", "OTEL_PYTHON_LOGGER_PROVIDER")
_started = False


def start() -> None:
    """Set up telemetry for this process. Never raises: the app must run regardless."""
    global _started
    if _started or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    _started = True
    if NAME_FROM_COMMAND in os.environ:  # before anything reads OTEL_SERVICE_NAME
        try:
            from otel_launch._runtime._service_name import name_this_process

            name_this_process()
        except Exception as exc:
            warn(f"the service name could not be read from the command ({type(exc).__name__}: {exc})")
    try:
        for name in PROVIDER_VARS:
            os.environ.setdefault(name, "otel_launch")
        from otel_launch._runtime import _app_providers, _imports, _lifecycle
        from otel_launch._runtime.integrations import INTEGRATIONS, on_logging_import

        _lifecycle.install()
        _imports.when_imported("opentelemetry.trace", _app_providers.let_the_apps_providers_win)
        _imports.when_imported("opentelemetry.metrics", _app_providers.let_the_apps_providers_win)
        for integration in INTEGRATIONS:
            _imports.when_imported(integration.trigger, integration.activate)
        # Log export, when asked for, starts with the logging module: most apps import it
        # early, and a process that never logs never pays for it.
        _imports.when_imported("logging", on_logging_import)
    except Exception as exc:
        warn(f"telemetry set-up failed, the app runs without it ({type(exc).__name__}: {exc})")
