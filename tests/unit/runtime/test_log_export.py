"""Log export from Logger.callHandlers (otel_launch/_runtime/_log_export.py), on the real logging module."""

from __future__ import annotations

import logging

import pytest

from otel_launch._runtime import _log_export


def _handler_emitting(monkeypatch, emit):
    """In place of the SDK's LoggingHandler: ``emit`` receives each exported record."""
    monkeypatch.setattr(_log_export, "_sdk_handler", lambda: type("Handler", (), {"emit": staticmethod(emit)}))


@pytest.fixture
def exported(monkeypatch):
    """Records the export step receives, with the step installed on logging.Logger for the test."""
    sent: list[logging.LogRecord] = []
    monkeypatch.setattr(logging.Logger, "callHandlers", logging.Logger.callHandlers)  # restored after
    _handler_emitting(monkeypatch, sent.append)
    _log_export.install_log_export(logging)
    return sent


def _logger(name: str, level: int = logging.INFO) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False
    logger.handlers[:] = []
    return logger


def test_logger_handle_calls_callhandlers_once_a_record_after_the_apps_filters():
    """The standard library's contract the export step depends on (undocumented, since 2.3)."""
    seen = []

    class Watching(logging.Logger):
        def callHandlers(self, record):  # noqa: N802 - logging's name
            seen.append(record.getMessage())

    logger = Watching("watching")
    logger.setLevel(logging.INFO)
    logger.addFilter(lambda record: "drop" not in record.getMessage())
    logger.info("kept")
    logger.info("drop me")
    logger.debug("below the level")
    logger.disabled = True
    logger.info("disabled")
    assert seen == ["kept"]


def test_every_record_the_apps_loggers_keep_is_exported_once_whatever_their_handlers(exported):
    app = _logger("tests.app.module")
    app.info("no handler at all")
    quiet = _logger("tests.app.quiet")
    quiet.addHandler(logging.NullHandler())
    quiet.warning("its own handler, not propagated")
    app.debug("below the level")
    filtered = _logger("tests.app.filtered")
    filtered.addFilter(lambda record: False)
    filtered.error("filtered out by the app")
    disabled = _logger("tests.app.disabled")
    disabled.disabled = True
    disabled.error("a disabled logger")
    assert [record.getMessage() for record in exported] == ["no handler at all", "its own handler, not propagated"]


def test_opentelemetrys_own_records_and_records_logged_while_exporting_are_never_exported(monkeypatch, exported):
    def emit_that_logs(record):
        exported.append(record)
        _logger("tests.urllib3").warning("retrying the export")

    monkeypatch.setattr(
        _log_export, "_sdk_handler", lambda: type("Handler", (), {"emit": staticmethod(emit_that_logs)})
    )
    _logger("opentelemetry.sdk._shared_internal").warning("export failed")
    _logger("otel_launch.x").warning("ours")
    _logger("tests.app").warning("the app's")
    assert [record.getMessage() for record in exported] == ["the app's"]


def test_basic_config_still_configures_the_console(exported, monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        assert len(root.handlers) == 1 and isinstance(root.handlers[0], logging.StreamHandler)
    finally:
        root.handlers[0].close()


def test_a_failing_export_never_fails_the_log_call_and_is_said_once(monkeypatch, exported, capsys):
    def broken(record):
        raise RuntimeError("provider gone")

    _handler_emitting(monkeypatch, broken)
    monkeypatch.setattr(_log_export, "_failed", [])
    _logger("tests.app").warning("one")
    _logger("tests.app").warning("two")
    assert capsys.readouterr().err.count("could not be exported (RuntimeError: provider gone)") == 1


@pytest.fixture
def exported_by_the_sdk(monkeypatch):
    """What the SDK's own LoggingHandler exports, with the export step installed on logging.Logger."""
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    monkeypatch.setattr(logging.Logger, "callHandlers", logging.Logger.callHandlers)  # restored after
    monkeypatch.setattr(_log_export, "_handler", [LoggingHandler(logger_provider=provider)])
    monkeypatch.setattr(_log_export, "_failed", [])
    _log_export.install_log_export(logging)

    def bodies():
        return [getattr(data, "log_record", data).body for data in exporter.get_finished_logs()]

    return bodies


def test_records_logging_tolerates_never_raise_into_the_app_and_are_exported(exported_by_the_sdk, capsys):
    """A record made by hand with no name, a message that is no string, arguments that do not fit:
    logging's own handlers take them (the last through handleError); the export step must too."""
    app = _logger("tests.app.odd")
    app.handle(logging.makeLogRecord({"name": None, "msg": "nameless", "levelno": logging.WARNING}))
    app.warning({"event": "a mapping"})
    app.warning("two values %s %s", 1)
    app.warning("%(key)s", 3)
    assert exported_by_the_sdk() == ["nameless", {"event": "a mapping"}, "two values %s %s", "%(key)s"]
    assert "could not be exported" not in capsys.readouterr().err
