"""The `retention` and `dead_letter_retry` jobs on SQLite and PostgreSQL: what goes, what stays, what is re-sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from services.context import Context
from services.redelivery import retry_transient
from services.retention import prune
from store import tables as t
from store.chat_state import suppress
from store.db import unit_of_work

DAY = timedelta(days=1)


def outbox_row(key: str, status: str, changed: datetime, **extra: Any) -> dict[str, Any]:
    return {"idempotency_key": key, "kind": "line_backordered", "channel": "email", "recipient": f"{key}@example.com",
            "audience": "customer", "status": status, "created_at": changed - timedelta(hours=1),
            "updated_at": changed, "error_reason": None, "fallback": [], "expires_at": None, "attempts": 3,
            "error": "it went wrong", **extra}


def inbox_row(event_id: str, status: str, at: datetime) -> dict[str, Any]:
    return {"source": "erp", "event_id": event_id, "type": "order.placed", "occurred_at": at, "received_at": at,
            "payload": {}, "status": status, "applied_at": at if status in ("applied", "ignored") else None}


def outbox_state(ctx: Context) -> dict[str, str]:
    with ctx.engine.connect() as conn:
        return dict(conn.execute(select(t.outbox.c.idempotency_key, t.outbox.c.status)).tuples().all())


def test_retention_deletes_only_finished_rows_past_their_time(ctx: Context) -> None:
    now = ctx.now()
    old, recent = now - 31 * DAY, now - 29 * DAY
    rows = [outbox_row(f"old-{s}", s, old) for s in ("sent", "delivered", "cancelled", "digested")]
    rows += [outbox_row(f"old-{s}", s, old) for s in ("pending", "failed", "dead", "held", "sending")]
    rows += [outbox_row(f"recent-{s}", s, recent) for s in ("sent", "delivered")]
    rows.append(outbox_row("created-old-changed-recently", "delivered", recent, created_at=old))
    ancient = now - 91 * DAY
    events = [inbox_row(f"old-{s}", s, ancient) for s in ("applied", "ignored", "parked", "pending", "dropped")]
    events += [inbox_row("recent-applied", "applied", now - 89 * DAY), inbox_row("resolved", "applied", ancient)]
    with unit_of_work(ctx.engine) as conn:
        conn.execute(t.outbox.insert(), rows)
        conn.execute(t.inbox.insert(), events)
        ids = dict(conn.execute(select(t.inbox.c.event_id, t.inbox.c.id)).tuples().all())
        conn.execute(t.dead_letters.insert(), [
            {"inbox_id": ids["old-parked"], "reason": "unknown product", "status": "parked", "created_at": ancient},
            {"inbox_id": ids["resolved"], "reason": "unknown product", "status": "resolved", "created_at": ancient},
            {"inbox_id": ids["old-dropped"], "reason": "unknown product", "status": "dropped", "created_at": ancient},
        ])
    pruned = prune(ctx, batch=2)  # small batches: several rounds
    assert (pruned.outbox, pruned.inbox) == (4, 3)
    assert sorted(outbox_state(ctx)) == sorted(
        ["old-pending", "old-failed", "old-dead", "old-held", "old-sending", "recent-sent", "recent-delivered",
         "created-old-changed-recently"])
    with ctx.engine.connect() as conn:
        kept = conn.execute(select(t.inbox.c.event_id)).scalars().all()
        letters = conn.execute(select(t.dead_letters.c.status)).scalars().all()
    assert sorted(kept) == ["old-dropped", "old-parked", "old-pending", "recent-applied"]
    assert sorted(letters) == ["dropped", "parked"]
    assert (prune(ctx).outbox, prune(ctx).inbox) == (0, 0)


def test_retention_days_come_from_the_configuration(ctx: Context) -> None:
    ctx.settings.retention.outbox_days = 3
    now = ctx.now()
    with unit_of_work(ctx.engine) as conn:
        conn.execute(t.outbox.insert(), [outbox_row("four-days", "sent", now - 4 * DAY),
                                         outbox_row("two-days", "sent", now - 2 * DAY)])
    assert prune(ctx).outbox == 1
    assert list(outbox_state(ctx)) == ["two-days"]


def test_dead_letter_retry_requeues_only_what_died_of_a_passing_cause(ctx: Context) -> None:
    now = ctx.now()
    soon = now + timedelta(hours=20)
    dead = [
        outbox_row("busy", "dead", now - timedelta(hours=2), error_reason="provider_busy", expires_at=soon,
                   attempts=8, error="Twilio busy"),
        outbox_row("teams-503", "dead", now - timedelta(hours=2), error_reason="http_503", expires_at=soon),
        outbox_row("no-expiry", "dead", now - timedelta(hours=2), error_reason="connection"),
        outbox_row("opted-out", "dead", now - timedelta(hours=2), error_reason="opted_out", expires_at=soon),
        outbox_row("invalid", "dead", now - timedelta(hours=2), error_reason="invalid_number", expires_at=soon),
        outbox_row("rejected", "dead", now - timedelta(hours=2), error_reason="http_400", expires_at=soon),
        outbox_row("expired", "dead", now - timedelta(hours=2), error_reason="expired", expires_at=soon),
        outbox_row("past-expiry", "dead", now - timedelta(hours=2), error_reason="timeout",
                   expires_at=now - timedelta(minutes=1)),
        outbox_row("too-old", "dead", now - timedelta(hours=49), error_reason="timeout"),
        outbox_row("fell-back", "dead", now - timedelta(hours=2), error_reason="rate_limited", expires_at=soon,
                   fallback=[["sms", "+447911123456"]]),
        outbox_row("stopped-since", "dead", now - timedelta(hours=2), error_reason="smtp_4xx", expires_at=soon),
        outbox_row("still-failing", "failed", now - timedelta(hours=2), error_reason="timeout", expires_at=soon),
    ]
    with unit_of_work(ctx.engine) as conn:
        conn.execute(t.outbox.insert(), dead)
        suppress(conn, "email", "stopped-since@example.com", "keyword:STOP", now)
        conn.execute(t.inbox.insert(), [inbox_row("waits", "parked", now - DAY), inbox_row("gone", "dropped", now)])
        ids = dict(conn.execute(select(t.inbox.c.event_id, t.inbox.c.id)).tuples().all())
        conn.execute(t.dead_letters.insert(), [
            {"inbox_id": ids["waits"], "reason": "unknown product", "status": "parked", "created_at": now - DAY},
            {"inbox_id": ids["gone"], "reason": "unknown product", "status": "dropped", "created_at": now - DAY}])
    done = retry_transient(ctx)
    assert (done.inbox, done.outbox) == (1, 3)
    state = outbox_state(ctx)
    assert sorted(k for k, s in state.items() if s == "pending") == ["busy", "no-expiry", "teams-503"]
    assert state["still-failing"] == "failed"
    assert all(state[k] == "dead" for k in ("opted-out", "invalid", "rejected", "expired", "past-expiry",
                                            "too-old", "fell-back", "stopped-since"))
    with ctx.engine.connect() as conn:
        busy = conn.execute(select(t.outbox).where(t.outbox.c.idempotency_key == "busy")).mappings().one()
        inbox = dict(conn.execute(select(t.inbox.c.event_id, t.inbox.c.status)).tuples().all())
    assert (busy["attempts"], busy["due_at"], busy["error"], busy["error_reason"], busy["expires_at"]) == (
        0, now, None, None, soon)
    assert inbox == {"waits": "pending", "gone": "dropped"}
    assert (retry_transient(ctx).outbox, retry_transient(ctx).inbox) == (0, 0)
