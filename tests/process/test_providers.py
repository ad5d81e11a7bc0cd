"""The app's own providers, set after otel-launch's were built: the first replaces ours, and the
API's set-once rule holds from then on."""

from __future__ import annotations

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, launcher, run

pytestmark = pytest.mark.process


def test_after_the_apps_provider_replaced_ours_a_later_one_is_refused(receiver, workdir):
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRIC_EXPORT_INTERVAL="60000")
    result = run([*launcher(), PYTHON, str(TARGETS / "provider_set_twice.py")], env, workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]  # the app's first providers stayed
    assert "Overriding of current TracerProvider is not allowed" in result.stderr
    assert "Overriding of current MeterProvider is not allowed" in result.stderr


def test_the_apps_provider_without_a_span_processor_is_served_by_ours_until_it_adds_one(receiver, workdir):
    """bookwyrm's set-up: set_tracer_provider(TracerProvider()), an exporter only when its own setting
    says so. Without one, every span went nowhere, silently: ours exports them, with one line."""
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none")
    result = run([*launcher(), PYTHON, str(TARGETS / "own_provider_without_processor.py")], env, workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "[]"]  # the app's provider stayed the global one
    assert result.stderr == (
        "otel-launch: warning: the app's TracerProvider has no span processor: "
        "otel-launch's exports its spans until the app adds one\n"
    )
    assert receiver.wait_for(lambda r: [s.name for s in r.spans] == ["before-its-own"], timeout=10)

    receiver.clear()
    result = run([*launcher(), PYTHON, str(TARGETS / "own_provider_without_processor.py"), "adds-one"], env, workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "['after-its-own']"]  # its own exporter got its span
    assert receiver.wait_for(lambda r: "before-its-own" in [s.name for s in r.spans], timeout=10)
    assert [s.name for s in receiver.spans] == ["before-its-own"]  # ours stepped aside: never sent twice

    receiver.clear()
    result = run(
        [*launcher(), PYTHON, str(TARGETS / "own_provider_without_processor.py"), "adds-at-once"], env, workdir
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "['before-its-own']"]
    assert result.stderr == ""  # its processor came before its first span: nothing to say, nothing of ours sent
    assert receiver.spans == []
