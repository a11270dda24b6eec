"""The sender interface every channel implements, and the two ways a send can fail."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message as the outbox holds it, rendered and addressed: all a sender may know."""

    id: int
    channel: str
    recipient: str  # the address on that channel: e-mail, E.164 number, URL, console name
    kind: str
    body: str  # the plain-text body (SMS, chat, e-mail text part)
    idempotency_key: str
    subject: str | None = None
    html: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)  # structured form (webhook JSON, cards)
    locale: str = "en"
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class Sent:
    """The provider accepted the message; `delivered` when acceptance is delivery (console)."""

    provider_id: str | None = None
    delivered: bool = False


class SendError(Exception):
    """A send that did not go through; `reason` is short and stable (it feeds KPIs by reason)."""

    retryable: bool = False

    def __init__(self, reason: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after


class RetryableError(SendError):
    """Try again later: timeouts, connection resets, 5xx, 429 (retry_after from Retry-After)."""

    retryable = True


class PermanentError(SendError):
    """Never retry this message on this channel: invalid address, 4xx, refused, not configured."""

    retryable = False


# Set by the dispatcher around each send: waits for the message's turn under its rate limits, or raises when its
# slot has passed (the dispatcher then hands the message back untried).
SEND_TURN: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar("send_turn", default=None)


async def wait_turn() -> None:
    """Called by a sender right before its request leaves (after its own store reads and queues), so the rate
    limits hold where the provider counts. Outside the try that classifies failures: what it raises must reach
    the dispatcher. A no-op outside a dispatcher and after the message's first request."""
    turn = SEND_TURN.get()
    if turn is not None:
        await turn()


class Sender(Protocol):
    channel: str

    async def send(self, msg: Outgoing) -> Sent:
        """Send one message; raise RetryableError or PermanentError when it does not go through."""
        ...

    async def aclose(self) -> None:
        """Release connections (called once when the worker stops)."""
        ...


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds (a decimal too) or an HTTP-date; None when
    unusable (garbage, negative, not finite), and the dispatcher's own backoff applies."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
