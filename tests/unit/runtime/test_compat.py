"""The contrib and SDK internals otel-launch uses exist on the installed release (each CI cell runs
this on its own OpenTelemetry set), and a missing one turns its feature off with one warning."""

from __future__ import annotations

import os
import sys

import pytest

from otel_launch._runtime import _compat


@pytest.mark.parametrize("feature", sorted(_compat.INTERNALS))
def test_every_internal_we_use_exists_on_this_release(feature):
    assert _compat.missing(feature) == []


def test_instance_attributes_we_use_exist_on_real_objects():
    from opentelemetry.instrumentation.dbapi import DatabaseApiIntegration
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    integration = DatabaseApiIntegration("test", "sqlite", connection_attributes={})
    integration.get_connection_attributes(None)
    assert [name for name in _compat.INSTANCE_ATTRIBUTES["django-sql"] if not hasattr(integration, name)] == []
    processor = BatchSpanProcessor(ConsoleSpanExporter())
    try:
        for feature in ("drop-counts", "span-encoding"):
            assert [name for name in _compat.INSTANCE_ATTRIBUTES[feature] if not hasattr(processor, name)] == []
        batch = processor._batch_processor
        assert isinstance(len(batch._queue), int) and batch._max_queue_size > 0 and batch._shutdown is False
        assert batch._pid == os.getpid()  # _span_export: a full queue in a child no fork hook renewed
    finally:
        processor.shutdown()
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    samplers = (ParentBased(ALWAYS_OFF), ALWAYS_OFF)
    names = _compat.INSTANCE_ATTRIBUTES["unsampled-children"]
    assert [name for name in names if not any(hasattr(sampler, name) for sampler in samplers)] == []
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:9")
    try:
        assert [name for name in _compat.INSTANCE_ATTRIBUTES["otlp-grpc-bytes"] if not hasattr(exporter, name)] == []
    finally:
        exporter.shutdown()


def test_a_missing_internal_turns_its_feature_off_with_one_warning(monkeypatch, capsys):
    monkeypatch.setitem(
        _compat.INTERNALS,
        "test-feature",
        ("the plain thing", ("opentelemetry.trace:get_tracer", "opentelemetry.trace:_NotThere.attr", "no.such:x")),
    )
    _compat.usable.cache_clear()
    try:
        assert _compat.missing("test-feature") == ["opentelemetry.trace:_NotThere.attr", "no.such:x"]
        assert _compat.usable("test-feature") is False
        assert _compat.usable("test-feature") is False  # asked again: no second line
    finally:
        _compat.usable.cache_clear()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("otel-launch: warning: test-feature: opentelemetry.trace:_NotThere.attr and 1 more")
    assert lines[0].endswith("; the plain thing serves instead")


def test_the_django_middleware_named_without_import_is_ours():
    pytest.importorskip("django")
    from otel_launch._runtime.integrations import django
    from otel_launch._runtime.integrations.django import request

    assert django.OUR_MIDDLEWARE == request.MIDDLEWARE


def test_the_resource_never_holds_the_command_line_and_is_renewed_in_a_forked_child(monkeypatch):
    """SDK 1.43 records the command line and keeps the parent's pid and instance id in a forked
    child; from 1.44 the SDK does neither itself (tests/process/test_launch.py checks children)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    monkeypatch.setenv("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "host,os,process")  # otel-launch's default
    resource = _compat.process_resource(Resource.create())
    assert resource.attributes["process.pid"] == os.getpid()
    assert "process.command_args" not in resource.attributes
    assert "process.command_line" not in resource.attributes
    if hasattr(TracerProvider, "_handle_fork"):  # 1.44+: the SDK's providers renew it at fork
        return
    parent = dict(resource.attributes)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            attributes = resource.attributes
            os.write(write, f"{attributes.get('process.pid')} {attributes.get('service.instance.id')}".encode())
        finally:
            os._exit(0)
    os.close(write)
    child_pid, instance_id = os.read(read, 200).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    assert int(child_pid) == pid and parent["process.pid"] == os.getpid()
    assert instance_id != parent["service.instance.id"]


def test_releases_compare_by_their_numbers():
    assert _compat._release("3.2") < _compat._release("3.2.9") < _compat._release("3.10") < _compat._release("4.1.13")
    assert _compat._release("5.2.0rc1") == (5, 2, 0) and _compat._release("5.2.0") >= _compat._release("5.2.0")
    assert _compat._release("dev") == ()


def test_a_library_below_its_floor_is_named_and_one_at_or_above_is_not(monkeypatch):
    import types

    for version, older in (("3.1.14", True), ("3.2", False), ("4.1.13", False), ("unknown", False)):
        monkeypatch.setitem(sys.modules, "django", types.SimpleNamespace(__version__=version))
        expected = "Django 3.1.14 is older than otel-launch supports (3.2 and later)" if older else None
        assert _compat.older_than_supported("django") == expected
    with pytest.raises(_compat.OlderThanSupported):
        monkeypatch.setitem(sys.modules, "celery", types.SimpleNamespace(__version__="5.1.2"))
        _compat.check_floor("celery.app.amqp")
    _compat.check_floor("sqlite3")  # no floor of ours: the contrib's own range check applies


def test_before_asgiref_3_6_django_middleware_is_marked_as_django_checks(monkeypatch):
    """Django 3.2 to 4.1 tell an async middleware by asyncio's check: the fallback marks it so."""
    import asyncio

    import asgiref.sync

    monkeypatch.delattr(asgiref.sync, "iscoroutinefunction", raising=False)  # absent before 3.6
    monkeypatch.delattr(asgiref.sync, "markcoroutinefunction", raising=False)
    iscoroutinefunction, markcoroutinefunction = _compat.coroutine_functions()

    class Middleware:
        def __call__(self, request):
            return None

    middleware = Middleware()
    assert not asyncio.iscoroutinefunction(middleware)
    assert markcoroutinefunction(middleware) is middleware
    assert asyncio.iscoroutinefunction(middleware) and iscoroutinefunction(middleware)


# -- the guard every integration step runs in (otel_launch/_runtime/integrations/_activation.py) -----


@pytest.fixture
def guard(monkeypatch):
    from otel_launch._runtime.integrations import _activation

    monkeypatch.setattr(_activation, "_said", set())
    return _activation.guard


def _broken() -> None:
    raise TypeError("connect() got an unexpected keyword argument 'weak'")


def test_a_failing_step_is_one_line_naming_the_cause_where_and_what_serves_instead(guard, capsys):
    served = []
    assert guard("thing", lambda: None) is True
    assert guard("thing", _broken, fallback=lambda: served.append(1) or "the contrib's thing serves instead") is False
    assert guard("thing", _broken, fallback=lambda: served.append(1) or "the contrib's thing serves instead") is False
    assert served == [1, 1]  # the fallback runs each time (it is idempotent); the line is said once
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("otel-launch: warning: thing: TypeError: connect() got an unexpected keyword argument")
    assert " at tests/unit/runtime/test_compat.py:" in line or " at " + __file__ in line  # where it was raised
    assert line.endswith("; the contrib's thing serves instead")


def test_without_a_fallback_the_line_says_what_the_app_goes_without(guard, capsys):
    guard("thing", _broken, without="thing calls run without spans")
    guard("other", _broken)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("; thing calls run without spans")
    assert lines[1].endswith("; other runs without telemetry")


def test_a_failing_fallback_is_said_too(guard, capsys):
    def fallback():
        raise ImportError("cannot import name 'CeleryInstrumentor'")

    guard("thing", _broken, fallback=fallback)
    (line,) = capsys.readouterr().err.splitlines()
    assert "; thing runs without telemetry (its fallback failed too: ImportError: cannot import name" in line


def test_a_library_below_the_floor_runs_the_fallback_with_one_line_for_all_its_steps(guard, capsys):
    served = []

    def older():
        raise _compat.OlderThanSupported("Thing 1.0 is older than otel-launch supports (2.0 and later)")

    guard("thing", older, fallback=lambda: served.append("request") or "the contrib's middleware serves instead")
    guard("thing", older, without="commands run without their span")
    assert served == ["request"]
    assert capsys.readouterr().err == (
        "otel-launch: warning: thing: Thing 1.0 is older than otel-launch supports (2.0 and later); "
        "the contrib's instrumentation serves instead of otel-launch's own\n"
    )


def test_a_long_or_multi_line_cause_stays_one_line(guard, capsys):
    def broken():
        raise RuntimeError("first\nsecond " + "x" * 500)

    guard("thing", broken)
    (line,) = capsys.readouterr().err.splitlines()
    assert "RuntimeError: first second xxx" in line and len(line) < 500


def test_every_own_integration_step_has_a_fallback_or_says_what_the_app_goes_without():
    from otel_launch._runtime.integrations import STEPS

    for integration in STEPS:
        if integration.hook == "on_import" and integration.name == "redis":
            continue  # the step is the contrib's instrumentor itself
        assert integration.fallback or integration.without, integration.trigger
