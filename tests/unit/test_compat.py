"""The contrib and SDK internals otel-launch uses exist on the installed release (each CI cell runs
this on its own OpenTelemetry set), and a missing one turns its feature off with one warning."""

from __future__ import annotations

import os

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
