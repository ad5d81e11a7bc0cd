"""A structured (JSON lines) log formatter, as apps shipping logs to a log store use."""

import json
import logging

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    """One JSON object per record: the usual fields and every extra attribute the record has."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        fields.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        return json.dumps(fields, default=str)
