"""Logging for every process: plain text or JSON lines, each with the request id when there is
one, and never a patient identifier or document text.

What keeps patient data out: exceptions are logged with their type and traceback frames but
not their message (an exception's text can quote what it failed on: a field of a message, a
SQL parameter); SQLAlchemy's loggers stay at WARNING whatever the level, since at INFO and
DEBUG they write statements' parameters and result rows; the web app writes its own access log
with the path but never the query string (the worklist's patient filter is a query parameter).
"""

from __future__ import annotations

import json
import logging
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")
# Set by the web app for the duration of a request (and by anything else that has an id).
request_id: ContextVar[str] = ContextVar("flagging_request_id", default="")
# Loggers that write data values at INFO or DEBUG: held at WARNING.
QUIET_LOGGERS = ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "werkzeug", "apscheduler")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def _exception_without_message(ei: ExcInfo) -> str:
    """The traceback's frames and each exception's type, leaving out what the exception said."""
    kind, value, tb = ei
    lines = ["Traceback (most recent call last):\n", *traceback.format_tb(tb)]
    name = kind.__qualname__ if kind else "Exception"
    lines.append(f"{name} (its message is not logged: it may quote patient data)")
    cause = value.__cause__ or value.__context__ if value is not None else None
    if cause is not None:
        lines.insert(0, _exception_without_message((type(cause), cause, cause.__traceback__)))
        lines.insert(1, "\nwhich led to:\n")
    return "".join(lines)


class RequestIdFilter(logging.Filter):
    """Give every record the current request id (empty outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", "")
        return f"{line} [request {rid}]" if rid else line

    def formatException(self, ei: Any) -> str:
        return _exception_without_message(ei)


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for a log collector."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "")
        if rid:
            data["request_id"] = rid
        for key in ("method", "path", "status", "duration_ms"):
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_info:
            data["exception"] = _exception_without_message(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure_logging(
    level: str = "INFO", log_format: str = "text", stream: TextIO | None = None
) -> None:
    """Set up the root logger of this process (replacing any handler it had), writing to
    `stream` (standard error by default)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
