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
