"""The `dead_letter_retry` job: give what failed for a passing reason another go.

Inbound events parked as dead letters are queued to be applied again (services/deadletters.retry): one
still missing its record is parked again, the rest go through.

Outbox rows that died of a transient cause (the provider busy, rate-limited, a timeout or a dropped
connection after every attempt) are sent again with fresh attempts, while they are still useful: created
within notify.max_age_hours and not past their own expiry (which is kept, so a message is never sent
later than it would have been). Never retried: permanent failures (invalid or opted-out recipient,
rejected content), expired messages, rows a fallback channel already took over (the customer would hear
twice), and recipients who opted out since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, or_, select, update

from services import deadletters
from services.context import Context
from store import tables as t
from store.chat_state import is_suppressed
from store.db import unit_of_work

# The reasons the senders give a RetryableError (notifiers/senders/*, notifiers/twilio_errors.py); a row is
# dead with one of them only because its attempts ran out.
TRANSIENT_REASONS = frozenset({"rate_limited", "provider_busy", "server_error", "sender_error", "connection",
                               "timeout", "http_408", "http_5xx", "smtp_4xx", "content_api"})
TRANSIENT_PREFIXES = ("http_5",)  # Teams' retryable statuses are http_<5xx> by number
BATCH = 500


@dataclass
class Redelivered:
    inbox: int = 0
    outbox: int = 0


def transient(reason: str | None) -> bool:
    return bool(reason) and (reason in TRANSIENT_REASONS or str(reason).startswith(TRANSIENT_PREFIXES))


def retry_transient(ctx: Context) -> Redelivered:
    now = ctx.now()
    done = Redelivered()
    with unit_of_work(ctx.engine) as conn:
        done.inbox = deadletters.retry(conn, None, now)
    with unit_of_work(ctx.engine) as conn:
        done.outbox = _requeue_outbox(conn, now, timedelta(hours=ctx.settings.notify.max_age_hours))
    return done


def _requeue_outbox(conn: Connection, now: datetime, max_age: timedelta) -> int:
    o, c = t.outbox, t.customers
    reasons = or_(o.c.error_reason.in_(sorted(TRANSIENT_REASONS)),
                  *(o.c.error_reason.like(f"{p}%") for p in TRANSIENT_PREFIXES))
    rows = conn.execute(
        select(o.c.id, o.c.channel, o.c.recipient, o.c.fallback, o.c.error_reason, c.c.preferences)
        .outerjoin(c, c.c.customer_id == o.c.customer_id)
        .where(o.c.status == "dead", reasons, o.c.created_at >= now - max_age,
               or_(o.c.expires_at.is_(None), o.c.expires_at > now))
        .order_by(o.c.id).limit(BATCH)).all()
    ids = [r.id for r in rows if transient(r.error_reason) and not r.fallback
           and not _opted_out(r.preferences, r.channel) and not is_suppressed(conn, r.channel, r.recipient)]
    if not ids:
        return 0
    result = conn.execute(update(o).where(o.c.id.in_(ids), o.c.status == "dead")
                          .values(status="pending", due_at=now, attempts=0, error=None, error_reason=None,
                                  lease_owner=None, updated_at=now))
    return int(result.rowcount or 0)


def _opted_out(preferences: dict[str, Any] | None, channel: str) -> bool:
    opted = set((preferences or {}).get("opt_out") or ())
    return "all" in opted or channel in opted
