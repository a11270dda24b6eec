"""Twilio error codes, classified once for the sender (API errors) and the status callbacks (ErrorCode).

https://www.twilio.com/docs/api/errors: the code, not the HTTP status, says what went wrong; the
status only decides when there is no code (a proxy's 502, say).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["opted_out", "invalid_number", "retry", "permanent"]

OPTED_OUT = frozenset({21610})  # the recipient replied STOP: Twilio refuses until they send START
# The number cannot receive this: not a valid number, not mobile, not on WhatsApp, landline or unknown handset.
INVALID_NUMBER = frozenset({21211, 21614, 63003, 30005, 30006})
OUTSIDE_WINDOW = 63016  # WhatsApp free-form text after the 24-hour session: a template is needed
RATE_LIMITED = 20429  # too many requests (an HTTP 429 without a code means the same)
# Twilio's side is busy or broken: the same message may go through later.
TRANSIENT = frozenset({30001, 20500, 20503, 63018})  # queue overflow, internal error, unavailable, WA rate


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: str  # short and stable: it becomes outbox.error_reason

    @property
    def retryable(self) -> bool:
        return self.action == "retry"


def classify(code: int | str | None, http_status: int | None = None) -> Verdict:
    """What to do about a Twilio error code (or, without one, an HTTP status)."""
    number = _as_int(code)
    if number in OPTED_OUT:
        return Verdict("opted_out", "opted_out")
    if number in INVALID_NUMBER:
        return Verdict("invalid_number", "invalid_number")
    if number == OUTSIDE_WINDOW:
        return Verdict("permanent", "outside_whatsapp_window")
    if number == RATE_LIMITED or http_status == 429 or number == 429:
        return Verdict("retry", "rate_limited")
    if number in TRANSIENT:
        return Verdict("retry", "provider_busy")
    if (http_status is not None and http_status >= 500) or (number is not None and 500 <= number < 600):
        return Verdict("retry", "server_error")
    if number is None:
        return Verdict("permanent", f"http_{http_status}" if http_status else "twilio_unknown")
    return Verdict("permanent", f"twilio_{number}")


def _as_int(code: int | str | None) -> int | None:
    if code is None or code == "":
        return None
    try:
        return int(code)
    except (TypeError, ValueError):
        return None
