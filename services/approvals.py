"""Deciding on a draft: approve (as written or edited), reject; expiry and cancellation close it the same way.

A decision is one conditional UPDATE (status = 'pending' in its WHERE clause): of two approvers clicking
at once, or one clicking twice, or a click on a card that is already decided, exactly one changes the
row; every other gets `AlreadyDecided`, which says who decided what and when. The approved text's
outbox rows, the audit entry (prompt version, model, draft, edit diff, approver) and the updates of
every approval card already posted commit in that same transaction.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, and_, case, cast, literal, select, update

from services import card_redraws, drafts
from services.context import Context
from services.notify_facts import IN_CHUNK
from store import tables as t
from store.db import unit_of_work
from store.upsert import insert_ignore

ACTING = ("approver",)


@dataclass(frozen=True)
class Approver:
    staff_id: str
    roles: frozenset[str]


class DraftNotFound(LookupError):
    pass


class NotAllowed(PermissionError):
    pass


class BadEdit(ValueError):
    """An edited text we cannot send; the message names the field."""


class AlreadyDecided(Exception):
    def __init__(self, view: dict[str, Any]) -> None:
        self.view = view
        super().__init__(decided_message(view))


def decided_message(view: Mapping[str, Any]) -> str:
    """"already approved by ana at 2026-12-01T10:00:00+00:00" (the one outcome every late click hears)."""
    if view["status"] == "drafting":
        return "still being drafted"
    return f"already {view['status']} by {view['decided_by'] or 'nobody'} at {view['decided_at'] or '-'}"


def may_decide(ctx: Context, who: Approver) -> bool:
    return bool(who.roles & set(ctx.settings.drafts.approver_roles)) or "admin" in who.roles


def approve(ctx: Context, draft_id: int, who: Approver, *, via: str, text: str | None = None) -> dict[str, Any]:
    """Approve a pending draft (with `text`, as edited): its message is planned now, in this transaction."""
    check(ctx, who)
    if text is not None:
        text = _edited(ctx, text)
    now = ctx.now()
    with unit_of_work(ctx.engine) as conn:
        before = _row(conn, draft_id)
        if before["status"] != "pending":
            raise AlreadyDecided(view(before))
        values: dict[str, Any] = {}
        if text is not None and text != before["text"]:
            values.update(text=text, edited=True)
        if not _decide(conn, draft_id, "approved", who.staff_id, via, now, **values):
            raise AlreadyDecided(view(_row(conn, draft_id)))
        send_approved(conn, ctx, draft_id, decided_by=who.staff_id, via=via, now=now, decided=True,
                      original=before["text"])
        return view(_row(conn, draft_id))


def reject(ctx: Context, draft_id: int, who: Approver, *, via: str, reason: str | None = None) -> dict[str, Any]:
    """Reject a pending draft: nothing goes to the customer, an offer in it is withdrawn."""
    check(ctx, who)
    now = ctx.now()
    with unit_of_work(ctx.engine) as conn:
        current = _row(conn, draft_id)
        if current["status"] != "pending" or not close(conn, ctx, draft_id, "rejected", decided_by=who.staff_id,
                                                       via=via, now=now, reason=reason):
            raise AlreadyDecided(view(_row(conn, draft_id)))
        return view(_row(conn, draft_id))


def check(ctx: Context, who: Approver) -> None:
    """NotAllowed unless `who` may decide (front doors ask before opening an edit form)."""
    if not may_decide(ctx, who):
        roles = " or ".join(ctx.settings.drafts.approver_roles)
        raise NotAllowed(f"only staff with the {roles} role may approve, edit or reject drafts")


def _edited(ctx: Context, text: str) -> str:
    text = text.strip()
    if not text:
        raise BadEdit("text: the edited message is empty")
    limit = ctx.settings.drafts.max_chars
    if len(text) > limit:
        raise BadEdit(f"text: {len(text)} characters, at most {limit}")
    return text


def _row(conn: Connection, draft_id: int) -> Mapping[str, Any]:
    row = conn.execute(select(t.drafts).where(t.drafts.c.id == draft_id)).mappings().first()
    if row is None:
        raise DraftNotFound(f"draft {draft_id} not found")
    return row


def _decide(conn: Connection, draft_id: int, status: str, by: str, via: str, now: datetime,
            open_statuses: Collection[str] = ("pending",), **values: Any) -> bool:
    d = t.drafts
    return bool(conn.execute(update(d).where(d.c.id == draft_id, d.c.status.in_(tuple(open_statuses))).values(
        status=status, decided_by=by, decided_at=now, decided_via=via, updated_at=now, **values)).rowcount)


def send_approved(conn: Connection, ctx: Context, draft_id: int, *, decided_by: str, via: str, now: datetime,
                  decided: bool = False, original: str | None = None) -> None:
    """Plan the approved text to the customer, audit the decision and update the approval cards.

    `decided`: the caller already moved the row to approved (a person's click); a policy's auto-send moves it here.
    """
    if not decided:
        _decide(conn, draft_id, "approved", decided_by, via, now, open_statuses=drafts.OPEN)
    d = _row(conn, draft_id)
    found = drafts.customer_of(conn, d["customer_id"]) if d["customer_id"] else None
    if found is not None:
        customer, segment = found
        from services.notifications import RowBuilder

        builder = RowBuilder(ctx, f"draft:{draft_id}", now, now)
        rows = builder.for_customer(conn, d["notice_kind"], customer, dict(d["facts"]), segment,
                                    scope=f"draft:{draft_id}", order_id=d["order_id"], line_ids=d["line_ids"],
                                    sku=d["sku"], text=d["text"],
                                    channel_hint=d["channel"] if d["kind"] == "question_reply" else None)
        insert_ignore(conn, t.outbox, rows, ["idempotency_key"])
    original = d["text"] if original is None else original
    diff = "".join(difflib.unified_diff(original.splitlines(keepends=True), d["text"].splitlines(keepends=True),
                                        "draft", "approved")) if d["edited"] else ""
    _audit(conn, d, "draft_approved", decided_by, now, before={"text": original},
           after={"text": d["text"], "edited": bool(d["edited"]), "diff": diff, "via": via})
    _update_cards(conn, ctx, d, now)


def close(conn: Connection, ctx: Context, draft_id: int, status: str, *, decided_by: str, via: str, now: datetime,
          reason: str | None = None) -> bool:
    """Reject, expire or cancel an open draft in the caller's transaction; False when it was decided already."""
    return bool(close_many(conn, ctx, [draft_id], status, decided_by=decided_by, via=via, now=now, reason=reason))


def close_many(conn: Connection, ctx: Context, draft_ids: Collection[int], status: str, *, decided_by: str,
               via: str, now: datetime, reason: str | None = None) -> list[int]:
    """`close` for many drafts in a few set-based statements; returns the ids this call closed.

    One conditional UPDATE per chunk decides them all: a draft decided meanwhile (by a click, another
    worker) is not in its RETURNING, and gets no audit row, no offer withdrawal and no card redraw here.
    """
    d, o = t.drafts, t.substitution_offers
    ids = sorted(set(draft_ids))
    closed: list[int] = []
    for i in range(0, len(ids), IN_CHUNK):
        closed += conn.execute(update(d).where(d.c.id.in_(ids[i:i + IN_CHUNK]), d.c.status.in_(drafts.OPEN)).values(
            status=status, decided_by=decided_by, decided_at=now, decided_via=via, updated_at=now)
            .returning(d.c.id)).scalars().all()
    if not closed:
        return []
    closed.sort()
    rows = [r for i in range(0, len(closed), IN_CHUNK)
            for r in conn.execute(select(d).where(d.c.id.in_(closed[i:i + IN_CHUNK]))).mappings().all()]
    rows.sort(key=lambda r: r["id"])
    offer_ids = sorted({r["offer_id"] for r in rows if r["offer_id"] is not None})
    for i in range(0, len(offer_ids), IN_CHUNK):
        conn.execute(update(o).where(o.c.id.in_(offer_ids[i:i + IN_CHUNK]), o.c.status == "offered")
                     .values(status="withdrawn", decided_at=now))
    if status == "expired" and ctx.settings.drafts.expired_send_template:
        outbox: list[dict[str, Any]] = []
        for d_row in rows:
            found = drafts.customer_of(conn, d_row["customer_id"]) \
                if d_row["kind"] == "delay_notice" and d_row["customer_id"] else None
            if found is None:
                continue
            from services.notifications import RowBuilder

            outbox += RowBuilder(ctx, f"draft:{d_row['id']}", now, now).for_customer(
                conn, d_row["notice_kind"], found[0], dict(d_row["facts"]), found[1], scope=f"draft:{d_row['id']}",
                order_id=d_row["order_id"], line_ids=d_row["line_ids"], sku=d_row["sku"],
                text=d_row["template_text"])
        insert_ignore(conn, t.outbox, outbox, ["idempotency_key"])
    conn.execute(t.audit_log.insert(), [
        _audit_row(d_row, f"draft_{status}", decided_by, now, before={"text": d_row["text"]}, after={"via": via},
                   reason=reason) for d_row in rows])
    _update_cards_many(conn, ctx, rows, now)
    return closed


def _audit(conn: Connection, d: Mapping[str, Any], action: str, actor: str, now: datetime, *,
           before: dict[str, Any] | None, after: dict[str, Any], reason: str | None = None) -> None:
    conn.execute(t.audit_log.insert().values(**_audit_row(d, action, actor, now, before=before, after=after,
                                                          reason=reason)))


def _audit_row(d: Mapping[str, Any], action: str, actor: str, now: datetime, *,
               before: dict[str, Any] | None, after: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    after = {**after, "kind": d["kind"], "source": d["source"], "model": d["model"],
             "prompt_version": d["prompt_version"], "approver": actor, "order_id": d["order_id"],
             "customer_id": d["customer_id"]}
    return {"at": now, "actor": actor[:100], "action": action, "entity": "draft", "entity_id": str(d["id"]),
            "reason": reason, "before": before, "after": after}


def _update_cards(conn: Connection, ctx: Context, d: Mapping[str, Any], now: datetime) -> None:
    """Every approval card already posted for this draft is redrawn with the outcome, in place."""
    _update_cards_many(conn, ctx, [d], now)


def _update_cards_many(conn: Connection, ctx: Context, ds: Sequence[Mapping[str, Any]], now: datetime) -> None:
    """Every approval card already posted for these drafts is redrawn with its outcome: one read, one insert."""
    by_cause = {f"draft:{d['id']}": d for d in ds}
    causes = sorted(by_cause)
    cards: dict[str, list[Any]] = {}
    for i in range(0, len(causes), IN_CHUNK):
        for c in card_redraws.posted(conn, t.outbox.c.cause.in_(causes[i:i + IN_CHUNK]),
                                     t.outbox.c.kind.in_(("approval_request", "approval_escalation")),
                                     extra_columns=(t.outbox.c.cause,)):
            cards.setdefault(c.cause, []).append(c)
    rows: list[dict[str, Any]] = []
    for cause in causes:  # the outcome card is drawn only when there is a card to redraw
        d = by_cause[cause]
        if cause in cards:
            rows += card_redraws.rows(ctx, cause, d["status"], cards[cause], outcome_card(d), now,
                                      extra={"draft_id": d["id"]}, order_id=d["order_id"],
                                      customer_id=d["customer_id"])
    insert_ignore(conn, t.outbox, rows, ["idempotency_key"])


def outcome_card(d: Mapping[str, Any]) -> dict[str, Any]:
    """The card an approval card becomes once decided: the final text, who did what and when, no buttons."""
    from notifiers.render import render_notice

    rendered = render_notice("approval_outcome", "slack", "en", drafts.card_facts(d))
    card = dict(rendered.card or {})
    card.update(kind="approval_outcome", actions=[], note=rendered.body.splitlines()[-1] if rendered.body else "",
                edited=bool(d["edited"]))
    return card


def view(d: Mapping[str, Any], shown: str | None = None) -> dict[str, Any]:
    """A draft as the API shows it."""
    status = shown or d["status"]
    return {"id": d["id"], "kind": d["kind"], "notice_kind": d["notice_kind"], "order_id": d["order_id"],
            "customer_id": d["customer_id"], "text": d["text"], "status": status,
            "created_at": drafts.iso(d["created_at"]), "decided_by": d["decided_by"],
            "decided_at": drafts.iso(d["decided_at"]), "decided_via": d["decided_via"], "channel": d["channel"],
            "source": d["source"], "model": d["model"], "prompt_version": d["prompt_version"],
            "edited": bool(d["edited"]), "expires_at": drafts.iso(d["expires_at"]),
            "escalated_at": drafts.iso(d["escalated_at"]), "grounding": d["grounding"], "offer_id": d["offer_id"]}


def _status() -> Any:
    """A draft's status as shown: approved becomes sent once a message of it reached the provider."""
    d, o = t.drafts, t.outbox
    sent = (select(o.c.id).where(o.c.cause == literal("draft:", String) + cast(d.c.id, String),
                                 o.c.audience == "customer", o.c.status.in_(("sent", "delivered")))
            .correlate(d).exists())
    return case((and_(d.c.status == "approved", sent), "sent"), else_=d.c.status)


def get_draft(ctx: Context, draft_id: int) -> dict[str, Any]:
    d = t.drafts
    with ctx.engine.connect() as conn:
        row = conn.execute(select(d, _status().label("shown")).where(d.c.id == draft_id)).mappings().first()
    if row is None:
        raise DraftNotFound(f"draft {draft_id} not found")
    return view(row, row["shown"])


def list_drafts(ctx: Context, status: str | None = None, *, limit: int = 100, order_id: str | None = None,
                customer_id: str | None = None) -> list[dict[str, Any]]:
    """Newest first, filtered by the status as shown (sent: approved and handed to the provider)."""
    d = t.drafts
    shown = _status()
    stmt = select(d, shown.label("shown"))
    if status is not None:
        # The stored status narrows the rows (its index); the shown one tells approved from sent.
        stmt = stmt.where(d.c.status == ("approved" if status == "sent" else status), shown == status)
    if order_id is not None:
        stmt = stmt.where(d.c.order_id == order_id)
    if customer_id is not None:
        stmt = stmt.where(d.c.customer_id == customer_id)
    with ctx.engine.connect() as conn:
        rows = conn.execute(stmt.order_by(d.c.id.desc()).limit(limit)).mappings().all()
    return [view(r, r["shown"]) for r in rows]
