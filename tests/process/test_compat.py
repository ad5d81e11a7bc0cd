"""A contrib, SDK or library release otel-launch's own code cannot run on: one warning line, the
contrib's or SDK's own behaviour, and the app runs on, whatever the cause: an internal gone (see
otel_launch/_runtime/_compat.py), an import error, a changed signature, anything raised while
activating, a library older than otel-launch supports (the guard in integrations/__init__.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, launcher, run

pytestmark = pytest.mark.process
SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
WITHOUT = str(TARGETS / "without_internal.py")
DJANGO_SCOPE = "opentelemetry.instrumentation.django"
CONTRIB_MIDDLEWARE = "opentelemetry.instrumentation.django.middleware.otel_middleware"


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("otel-launch: warning:")]


def _django_request(
    receiver, workdir: Path, internal: str, *args: str, after: str = "opentelemetry.instrumentation.django"
):
    """One request through Django's test client, with ``internal`` changed (see without_internal.py)
    once the ``after`` modules were imported (they hold their own reference to it)."""
    pytest.importorskip("django")
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_SERVICE_NAME="shop",
        SHOP_DB=str(workdir / "shop.sqlite3"),
    )
    target = [WITHOUT, "--after", after, internal]
    result = run([*launcher(), PYTHON, *target, str(TARGETS / "django_client.py"), str(SHOP), *args], env, workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200"
    assert receiver.wait_for(lambda r: any(s.scope == DJANGO_SCOPE for s in r.spans), timeout=10)
    (server,) = [span for span in receiver.spans if span.scope == DJANGO_SCOPE]
    return server, _warnings(result.stderr)


def _children(receiver, span) -> list[str]:
    return sorted(child.name for child in receiver.spans if child.parent_span_id == span.span_id)


def test_without_an_internal_of_our_request_path_the_contribs_middleware_serves(receiver, workdir):
    server, warnings = _django_request(receiver, workdir, "opentelemetry.instrumentation._semconv:_set_status")
    assert len(warnings) == 1, warnings
    assert "django-request: opentelemetry.instrumentation._semconv:_set_status not found" in warnings[0]
    assert "the contrib's Django middleware serves instead" in warnings[0]
    # The contrib's span as it names it (our route fix needs the same names), with our SQL inside.
    assert server.name == "GET orders/<int:pk>/"
    children = [span.name for span in receiver.spans if span.parent_span_id == server.span_id]
    assert "SELECT" in children


def test_without_an_internal_of_the_contrib_middleware_it_serves_unfixed(receiver, workdir):
    internal = "opentelemetry.instrumentation._semconv:_get_schema_url"  # the fixes use our request path's names
    server, warnings = _django_request(receiver, workdir, internal, "--app-instruments-django")
    assert len(warnings) == 1 and "django-contrib-fixes: " in warnings[0], warnings
    assert server.name == "GET orders/<int:pk>/"  # the contrib's name: the route fix is off


def test_without_the_sdks_encoder_internals_spans_go_out_through_the_sdks_encoder(receiver, workdir):
    after = "opentelemetry.exporter.otlp.proto.common._internal.trace_encoder"  # the SDK's keeps its reference
    internal = "opentelemetry.exporter.otlp.proto.common._internal:_encode_instrumentation_scope"
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none"
    )
    target = [WITHOUT, "--after", after, internal, str(TARGETS / "span_and_exit.py"), "hello"]
    result = run([*launcher(), PYTHON, *target], env, workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: [s.name for s in r.spans] == ["hello"], timeout=10)
    warnings = _warnings(result.stderr)
    assert len(warnings) == 1 and "otlp-encoding: " in warnings[0] and "the SDK's OTLP span encoder" in warnings[0]


@pytest.mark.parametrize("handler", ["wsgi", "asgi"])
def test_with_asgiref_before_3_6_our_request_path_serves(receiver, workdir, handler):
    """asgiref < 3.6 (Django 3.2 to 4.1 allow it; a lock file pins 3.5.2 with Django 4.1) has no
    ``iscoroutinefunction``/``markcoroutinefunction``: our middleware uses the check and mark Django
    itself used then. Through ASGI every middleware is a coroutine: a wrong mark fails the request."""
    after = "django.core.handlers.base,django.utils.deprecation,django.test,asgiref.compatibility"  # as old asgiref's
    gone = "asgiref.sync:iscoroutinefunction=hidden,asgiref.sync:markcoroutinefunction=hidden"
    args = ["--async"] if handler == "asgi" else []
    server, warnings = _django_request(receiver, workdir, gone, *args, after=after)
    assert warnings == []
    assert server.name == "GET /orders/<int:pk>/"
    assert "SELECT" in _children(receiver, server)


def test_an_import_error_in_our_request_path_falls_back_to_the_contribs_middleware(receiver, workdir):
    """A public contrib name our request path imports (not an internal _compat lists) gone in a release."""
    gone = "opentelemetry.instrumentation.propagators:get_global_response_propagator"
    server, warnings = _django_request(receiver, workdir, gone, after=CONTRIB_MIDDLEWARE)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        "otel-launch: warning: django: ImportError: cannot import name 'get_global_response_propagator'"
    )
    assert " at otel_launch/_runtime/integrations/django/request.py:" in warnings[0]  # where it was raised
    # The fixes share the request path's module: the contrib's middleware as it is, its own span name.
    assert warnings[0].endswith(
        "; the contrib's Django middleware serves instead, as it is (without otel-launch's fixes)"
    )
    assert server.name == "GET orders/<int:pk>/"
    assert "SELECT" in _children(receiver, server)


def test_a_changed_signature_falls_back_to_the_contribs_middleware_with_our_fixes(receiver, workdir):
    """A helper our request path calls with an argument takes none in a new release (TypeError)."""
    changed = "opentelemetry.util.http:get_excluded_urls=nullary"
    server, warnings = _django_request(receiver, workdir, changed, after=CONTRIB_MIDDLEWARE)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("otel-launch: warning: django: TypeError: nullary() takes 0 positional arguments")
    assert warnings[0].endswith("; the contrib's Django middleware serves instead")
    assert server.name == "GET /orders/<int:pk>/"  # the contrib's span, named as ours: the fixes apply
    assert _children(receiver, server) == ["SELECT", "cache.get", "cache.set"]


def test_a_django_older_than_supported_gets_the_contribs_instrumentation_with_one_line(receiver, workdir):
    """Below the floor none of our Django code runs (untested there): the contrib's middleware as it
    is, SQL spans from the contrib's DB-API instrumentation, no command or cache spans."""
    server, warnings = _django_request(receiver, workdir, "django:__version__='3.1.14'", after="django")
    assert warnings == [
        "otel-launch: warning: django: Django 3.1.14 is older than otel-launch supports (3.2 and later); "
        "the contrib's instrumentation serves instead of otel-launch's own"
    ]
    assert server.name == "GET orders/<int:pk>/"
    queries = [s for s in receiver.spans if s.parent_span_id == server.span_id]
    assert queries and {s.scope for s in queries} == {"opentelemetry.instrumentation.sqlite3"}
    assert not [s for s in receiver.spans if s.name.startswith("cache.") or s.name == "migrate"]


def test_an_exception_while_activating_celery_falls_back_to_the_contribs_instrumentation(receiver, workdir):
    """Raised halfway through our Celery activation (the contrib instrumented, its worker side not yet
    taken off): the contrib's instrumentation, producer and worker side, serves; one run span a task."""
    pytest.importorskip("celery")
    ours = "otel_launch._runtime.integrations.celery"
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none")
    raises = f"{ours}:_disconnect_contrib_handlers=raises"
    target = [WITHOUT, "--after", ours, raises, str(TARGETS / "celery_in_process.py")]
    result = run([*launcher(), PYTHON, *target], env, workdir)
    assert (result.returncode, result.stdout) == (0, "3\n"), result.stderr
    warnings = _warnings(result.stderr)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("otel-launch: warning: celery: RuntimeError: raised where otel-launch calls it")
    assert warnings[0].endswith("; the contrib's Celery instrumentation serves instead")
    assert receiver.wait_for(lambda r: any(s.name == "run/inproc.add" for s in r.spans), timeout=10)
    by_name = {span.name: span for span in receiver.spans}
    (run_span,) = [span for span in receiver.spans if span.name == "run/inproc.add"]
    assert run_span.parent_span_id == by_name["apply_async/inproc.add"].span_id
    assert by_name["apply_async/inproc.add"].parent_span_id == by_name["request"].span_id
    assert "messaging.operation.type" not in run_span.attributes  # the contrib's run span, not ours


def test_an_exception_while_activating_sqlite3_falls_back_to_the_contribs_instrumentor(receiver, workdir):
    ours = "otel_launch._runtime.integrations.dbapi"
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none")
    target = [
        WITHOUT,
        "--after",
        ours,
        f"{ours}:_instrument_on_first_connect=raises",
        str(TARGETS / "sqlite_in_span.py"),
    ]
    result = run([*launcher(), PYTHON, *target], env, workdir)
    assert result.returncode == 0, result.stderr
    (warning,) = _warnings(result.stderr)
    assert warning.startswith("otel-launch: warning: sqlite3: RuntimeError: raised where otel-launch calls it at ")
    raised_at = (
        Path(WITHOUT).read_text().splitlines().index('    raise RuntimeError("raised where otel-launch calls it")')
    )
    assert warning.endswith(
        f"without_internal.py:{raised_at + 1}; the contrib's sqlite3 instrumentation serves instead"
    )
    assert receiver.wait_for(lambda r: len(r.spans) >= 4, timeout=10)
    (handler,) = [span for span in receiver.spans if span.name == "handler"]
    assert _children(receiver, handler) == ["CREATE", "INSERT", "SELECT"]
