"""Which revokes the worker's main process records as a run span of its own (celery/killed.py).

The e2e test (tests/e2e/test_celery_depth.py) revokes a task on a real prefork worker; these cover
what it cannot: a pool that cannot terminate, and a signal the task handles itself.
"""

from __future__ import annotations

import pytest

pytest.importorskip("celery")

from otel_launch._runtime.integrations.celery import killed  # noqa: E402


class _Request:
    """Only what the wrapper reads: a running task, and Celery's terminate() (replaced per test)."""

    time_start = 1.0

    def on_timeout(self, soft, timeout):
        pass

    def on_failure(self, exc_info, *args, **kwargs):
        pass

    def terminate(self, pool, signal=None):
        pool.terminate_job(1234, signal)
        self._already_revoked = True


class _Pool:
    def __init__(self, can_terminate: bool) -> None:
        self.can_terminate = can_terminate

    def terminate_job(self, pid, signal):
        if not self.can_terminate:  # celery.concurrency.base.BasePool: threads, solo
            raise NotImplementedError("pool does not support terminate")


@pytest.fixture
def recorded(monkeypatch) -> list[str]:
    """What the main process records; ``_Request.made`` is a request class with the wrapper installed."""
    seen: list[str] = []
    monkeypatch.setattr(killed, "_record", lambda request, exc, state="FAILURE": seen.append(f"{state}: {exc}"))

    class Request(_Request):
        pass

    killed.install(Request)
    monkeypatch.setattr(_Request, "made", Request, raising=False)
    return seen


@pytest.mark.parametrize("signal", [None, "TERM", "SIGKILL", 3])
def test_a_revoke_that_kills_the_child_is_recorded_once(recorded, signal):
    request = _Request.made()
    request.terminate(_Pool(True), signal)
    request.terminate(_Pool(True), signal)  # revoked again: already revoked, nothing more
    assert len(recorded) == 1 and recorded[0].startswith("REVOKED: terminated by signal")


def test_a_pool_that_cannot_terminate_records_nothing(recorded):
    with pytest.raises(NotImplementedError):
        _Request.made().terminate(_Pool(False), "TERM")
    assert recorded == []  # the task runs on and records its own run span


def test_a_signal_the_task_handles_records_nothing(recorded):
    _Request.made().terminate(_Pool(True), "SIGUSR1")  # soft time limit: raised in the task
    assert recorded == []
