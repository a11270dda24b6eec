"""What a log record was made for: the HTTP request and the inbox event being applied.

Both ride in contextvars, so they follow a request into FastAPI's thread pool and an event through
every function that applies it, without being passed around. `ContextFilter` copies them onto each
record; backorder/logs.py installs it on the handlers it configures.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar, Token

request_id_var: ContextVar[str | None] = ContextVar("backorder_request_id", default=None)
event_id_var: ContextVar[str | None] = ContextVar("backorder_event_id", default=None)

# A caller's X-Request-ID is kept only when it is short and plain: it lands in every log line and in a
# response header, so nothing that could forge a log line or a header is taken as is.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}")


def request_id_from(header: str | None) -> str:
    """The caller's request id when sane, else a new one."""
    if header and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def set_event(event: str | None) -> Token[str | None]:
    """Mark the records made from now on as made for `event` (source:event_id); reset with the token."""
    return event_id_var.set(event)


def reset_event(token: Token[str | None] | None) -> None:
    if token is not None:
        event_id_var.reset(token)


class ContextFilter(logging.Filter):
    """Puts request_id and event_id on every record (None when the record was made outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "event_id"):
            record.event_id = event_id_var.get()
        return True
