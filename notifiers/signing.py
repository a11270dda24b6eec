"""HMAC-SHA256 signatures of webhook deliveries: what the sender adds and what a receiver checks.

The signed string is ``f"{timestamp}.".encode() + body``: binding the timestamp stops a captured
request from being replayed later with a fresh X-Backorder-Timestamp header.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SCHEME = "v1"


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Backorder-Signature value of `body` sent at `timestamp` (unix seconds): ``v1=<hex>``."""
    return f"{SCHEME}={_digest(secret, timestamp, body)}"


def verify(
    secret: str,
    timestamp_header: str | None,
    body: bytes,
    signature_header: str | None,
    *,
    now: float | None = None,
    tolerance: int = 300,
) -> bool:
    """True when the signature matches and the timestamp is within `tolerance` seconds of `now`.

    The header may list several comma-separated signatures (``v1=..,v1=..``) so a receiver keeps
    working while the secret is rotated on both sides; any one valid ``v1`` signature is enough.
    """
    if not timestamp_header or not signature_header:
        return False
    try:
        timestamp = int(timestamp_header.strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body).encode()
    ok = False
    for part in signature_header.split(","):
        scheme, _, value = part.strip().partition("=")
        # No early exit: the time taken must not depend on which candidate matched.
        if scheme == SCHEME and hmac.compare_digest(value.strip().lower().encode("utf-8", "replace"), expected):
            ok = True
    return ok
