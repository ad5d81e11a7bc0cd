"""A request's context for less: the W3C extraction skipped when the request carries none of its
headers, and the context attached and detached on the runtime context's own ``ContextVar``.

Reproduces, for the Django request path (django/request.py):

- ``opentelemetry.propagate.extract(environ, getter=wsgi_getter)``: when the global propagator is
  one whose result is known for a request without its headers, that result is given without
  asking it. Known: the API's ``TraceContextTextMapPropagator`` alone, or a
  ``CompositePropagator`` (the launcher's default, ``tracecontext,baggage``) whose first
  propagator is that one and whose others are it or the API's ``W3CBaggagePropagator``. Asked
  with no context, the trace-context propagator starts from a new empty ``Context`` and returns
  it unchanged when ``traceparent`` is missing; the baggage one, given that context, returns it
  unchanged when ``baggage`` is missing. So, when none of the environ keys ``wsgi_getter`` reads
  for their fields (``HTTP_TRACEPARENT``, ``HTTP_TRACESTATE``, ``HTTP_BAGGAGE``) holds a value,
  extraction gives an empty ``Context``. Any other propagator (B3, Jaeger, a composite starting
  with the baggage one, which starts from the current context, an app's own), any other getter,
  and every request carrying one of those headers go through the propagator itself.
- ``opentelemetry.context.attach`` / ``detach`` / ``get_current``: with the API's runtime context
  (``ContextVarsRuntimeContext``, the only one it ships), they set, reset and read its
  ``ContextVar``; here that is done directly (two Python calls fewer each). A reset that fails
  goes through the API's ``detach``, which fails the same way and logs it as it always does.
  Another runtime context (``OTEL_PYTHON_CONTEXT``) is used through the API.

Why: an unsampled request costs only its propagation, its non-recording span and its duration
metric (docs/cost.md); the extraction and the context calls are most of the propagation part.
tests/unit/runtime/integrations/test_lean_context.py compares each with the API's on the same
carriers and propagators, side by side.

API internals relied on: ``opentelemetry.context._RUNTIME_CONTEXT`` and its ``_current_context``,
``CompositePropagator._propagators``. Without them the API's own functions serve; the test above
asserts that, on each supported release, the direct paths are the ones taken.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from opentelemetry import context as context_api
from opentelemetry.context import Context
from opentelemetry.propagate import get_global_textmap


def _context_var() -> Any:
    """The API's runtime context's ``ContextVar``, or None when it is not the API's own."""
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    if type(runtime) is not ContextVarsRuntimeContext:
        return None
    var = getattr(runtime, "_current_context", None)
    return var if isinstance(var, ContextVar) else None


_VAR = _context_var()  # the API chooses its runtime context once, at import: so do we

if _VAR is not None:
    get_current: Any = _VAR.get
    attach: Any = _VAR.set

    def detach(token: Any) -> None:
        try:
            _VAR.reset(token)
        except Exception:  # a token of another context, or used already: the API says so
            context_api.detach(token)

else:
    get_current = context_api.get_current
    attach = context_api.attach
    detach = context_api.detach


# --- extraction ---------------------------------------------------------------------------------------

_checked: tuple[Any, Any, Any] = (None, None, None)  # the propagator and getter last checked, their keys


def _environ_keys(textmap: Any, getter: Any) -> tuple[str, ...] | None:
    """The environ keys of the fields of a propagator known to extract an empty ``Context`` from
    a carrier without them (see the module's docstring); None for any other, or another getter."""
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.instrumentation.wsgi import wsgi_getter
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if getter is not wsgi_getter:
        return None
    if type(textmap) is TraceContextTextMapPropagator:
        propagators: list[Any] = [textmap]
    elif type(textmap) is CompositePropagator:
        propagators = list(getattr(textmap, "_propagators", None) or ())
        if not propagators or type(propagators[0]) is not TraceContextTextMapPropagator:
            return None
        if any(type(p) not in (TraceContextTextMapPropagator, W3CBaggagePropagator) for p in propagators):
            return None
    else:
        return None
    fields = {field for p in propagators for field in p.fields}
    return tuple(sorted("HTTP_" + field.upper().replace("-", "_") for field in fields))  # as wsgi_getter reads them


def extract_wsgi(environ: dict, getter: Any) -> Any:
    """``propagate.extract(environ, getter=getter)``, without asking the propagator when the
    answer is known: an empty ``Context`` for a request without trace context or baggage."""
    global _checked
    textmap = get_global_textmap()
    checked = _checked  # one read: another thread may replace it
    if textmap is not checked[0] or getter is not checked[1]:
        checked = _checked = (textmap, getter, _environ_keys(textmap, getter))
    keys = checked[2]
    if keys is not None:
        for key in keys:
            if environ.get(key) is not None:
                break
        else:
            return Context()
    return textmap.extract(environ, getter=getter)
