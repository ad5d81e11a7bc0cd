"""Django: instrumented when the app calls ``django.setup()``, not when it imports django.

``setup()`` runs before the WSGI/ASGI handler loads its middleware and before a management
command runs, and by then the app has chosen its settings (``wsgi.py`` and ``manage.py`` set
DJANGO_SETTINGS_MODULE first). Instrumenting at import time would read settings before the
app had chosen them.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any

from otel_launch._runtime._log import warn


def _settings_are_chosen() -> bool:
    from django.conf import settings

    return bool(os.environ.get("DJANGO_SETTINGS_MODULE")) or settings.configured


def instrument() -> None:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    from otel_launch._runtime.integrations._instrumentor import instrument_once

    instrument_once(DjangoInstrumentor())


def on_import(django: ModuleType) -> None:
    original_setup = django.setup

    @functools.wraps(original_setup)
    def setup(*args: Any, **kwargs: Any) -> Any:
        try:
            if _settings_are_chosen():
                instrument()
        except Exception as exc:  # never stand between the app and its own setup
            warn(f"could not instrument django, it runs without telemetry ({type(exc).__name__}: {exc})")
        return original_setup(*args, **kwargs)

    django.setup = setup
