"""Delivery status reported by a provider after it accepted a message (Twilio's status callbacks).

A row only moves forward: callbacks arrive out of order and more than once, so a late "sent" after
"delivered" changes nothing, and only a row the provider accepted whose fate is unknown can become
delivered or fail: `sent`, or still `sending` (the sender notes the provider id as soon as Twilio
accepts, so a callback that overtakes the worker's batch result still finds its row; the worker's
result then finds the row moved on and leaves it). Failures are classified like the sender's own errors
(notifiers/twilio_errors.py) and fall back to the next channel like them.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, func, select, update

from notifiers.dispatch import backoff, fallback_row
from notifiers.twilio_errors import classify
from services.context import Context
from store import outbox
from store import tables as t
from store.chat_state import set_opt_out
from store.db import unit_of_work
from store.upsert import insert_ignore

log = logging.getLogger(__name__)

DELIVERED = frozenset({"delivered", "read"})
FAILED = frozenset({"undelivered", "failed"})
PROGRESS = frozenset({"accepted", "scheduled", "queued", "sending", "sent", "receiving", "received"})
# Final for Twilio, but nothing for us to record: a scheduled send we never make, or a part of a long SMS.
IGNORED = frozenset({"canceled", "partially_delivered"})
KNOWN = DELIVERED | FAILED | PROGRESS | IGNORED
ACCEPTED = ("sending", "sent")  # rows whose fate a callback may still decide

_rng = random.Random()


def record_status(ctx: Context, provider_id: str, status: str, error_code: str | int | None = None) -> str:
    """Apply one status callback; returns what became of the row.

    "delivered", "dead:<reason>", "retry:<reason>", "unchanged" (a progress report, or a row already
    past this state) or "unknown" (no row has this provider id).
    """
    status = (status or "").strip().lower()
    if status not in KNOWN:
        raise ValueError(f"MessageStatus: unknown status {status!r}; one of {', '.join(sorted(KNOWN))}")
    now = ctx.now()
    o = t.outbox
    with unit_of_work(ctx.engine) as conn:
        row = conn.execute(select(
            o.c.id, o.c.status, o.c.channel, o.c.recipient, o.c.kind, o.c.fallback, o.c.locale, o.c.customer_id,
            o.c.idempotency_key, o.c.expires_at, o.c.attempts).where(o.c.provider_id == provider_id)).first()
        if row is None:
            log.info("status %s for unknown message %s: ignored", status, provider_id)
            return "unknown"
        if status in PROGRESS | IGNORED or row.status not in ACCEPTED:
            return "unchanged"
        sent_only = (o.c.id == row.id) & o.c.status.in_(ACCEPTED)  # a concurrent callback may have moved it
        if status in DELIVERED:
            done = conn.execute(update(o).where(sent_only).values(
                status="delivered", delivered_at=now, sent_at=func.coalesce(o.c.sent_at, now), lease_owner=None,
                due_at=None, updated_at=now))
            return "delivered" if done.rowcount else "unchanged"
        return _failed(conn, ctx, row, sent_only, status, error_code, now)


def _failed(conn: Connection, ctx: Context, row: Row[Any], sent_only: ColumnElement[bool], status: str,
            error_code: str | int | None, now: datetime) -> str:
    """Retry what may still go through; otherwise dead, and on to the next channel the routing chose.

    The same decisions as the dispatcher's for a failed send (notifiers/dispatch.py), so a message
    Twilio accepted and then could not deliver ends where one it refused at once would, with one
    difference: retries used up on this channel also fall back, since the next one may still reach them.
    """
    o = t.outbox
    cfg = ctx.settings.notify
    verdict = classify(error_code)
    error = f"Twilio reported {status}, ErrorCode {error_code or 'none'}"
    reason = verdict.reason
    if verdict.retryable:
        due = now + timedelta(seconds=backoff(row.attempts, cfg, _rng))
        if row.expires_at is not None and due > row.expires_at:
            reason = "expired"  # too late here, and as late on any other channel
        elif row.attempts < cfg.max_attempts:
            done = conn.execute(update(o).where(sent_only).values(
                status="failed", due_at=due, error=error, error_reason=verdict.reason, lease_owner=None,
                updated_at=now))
            return f"retry:{verdict.reason}" if done.rowcount else "unchanged"
    done = conn.execute(update(o).where(sent_only).values(status="dead", due_at=None, error=error,
                                                          error_reason=reason, lease_owner=None, updated_at=now))
    if not done.rowcount:
        return "unchanged"
    if verdict.action == "opted_out":  # as if they had said STOP to us: planning routes around it from now on
        set_opt_out(conn, row.channel, row.recipient, row.customer_id, True, now, f"twilio:{error_code}")
    if reason != "expired" and row.fallback:
        insert_ignore(conn, o, [fallback_row(row, outbox.fallback_source(conn, row.id), now)], ["idempotency_key"])
    return f"dead:{reason}"
