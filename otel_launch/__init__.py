"""otel-launch: run a Django or Celery app with OpenTelemetry, without changing its code.

The public names load on first use: the bootstrap imports this package in every launched
process, which must not pay for the launcher's modules.
"""

from __future__ import annotations

from otel_launch._version import __version__

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from otel_launch._core.settings import SETTINGS, Setting  # noqa: F401
    from otel_launch._launcher.config import Config, ConfigError  # noqa: F401
    from otel_launch._launcher.launch import LaunchError, launch  # noqa: F401

_EXPORTS = {
    "Config": "otel_launch._launcher.config",
    "ConfigError": "otel_launch._launcher.config",
    "LaunchError": "otel_launch._launcher.launch",
    "launch": "otel_launch._launcher.launch",
    "SETTINGS": "otel_launch._core.settings",
    "Setting": "otel_launch._core.settings",
}

__all__ = ["SETTINGS", "Config", "ConfigError", "LaunchError", "Setting", "__version__", "launch"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'otel_launch' has no attribute {name!r}")
