"""Log records of `serve`, `worker` and `demo`: JSON lines (python-json-logger) or plain text.

Every record carries the request id and the event being applied when there is one
(services/log_context.py). Configured once per command from `[logging]`; the rich console output of
the CLI is separate (stdout) and unaffected.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from backorder.config import LoggingSettings
from services.log_context import ContextFilter

_OURS = "backorder_handler"  # marks the handler we installed, so configuring again replaces it
CONTEXT_FIELDS = ("request_id", "event_id")


class JsonLines(JsonFormatter):
    """One JSON object per line: time, level, logger, message, the context ids when set, and any extra."""

    def __init__(self) -> None:
        # timestamp: ISO 8601 in UTC with microseconds, which log stores parse without a pattern.
        super().__init__("%(levelname)s %(name)s %(message)s", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"})

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        for key in CONTEXT_FIELDS:  # outside a request or an event they are not there, rather than null
            if log_record.get(key) is None:
                log_record.pop(key, None)
        log_record.pop("color_message", None)  # uvicorn's copy of the message with terminal colour codes
        return log_record


class TextLines(logging.Formatter):
    """`time LEVEL logger: message [request_id=… event_id=…]` for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if getattr(record, k, None))
        return f"{line} [{ids}]" if ids else line


def configure(settings: LoggingSettings, stream: TextIO | None = None) -> logging.Handler:
    """Send every record at `settings.level` and above to `stream` (stderr), in the configured format."""
    stream = stream if stream is not None else sys.stderr
    fmt = settings.format or ("text" if stream.isatty() else "json")
    handler = logging.StreamHandler(stream)
    handler.set_name(_OURS)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonLines() if fmt == "json" else TextLines())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _OURS]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    return handler
