"""Drafts: a personal message a person approves before it reaches the customer (docs/approvals.md).

The planner asks `mode()` for each customer notice that could be personal (a delay, a substitution
offer, a partial-shipment offer, a reply to a question). `template` plans the template notice as
before; `approve` and `auto` write a draft instead, in the planner's transaction:

- without an LLM the draft is the template text, ready at once: `pending`, with its approval cards;
- with one it is `drafting`: the worker's `compose_due` asks the model outside any transaction,
  checks the facts (drafting/grounding.py), and makes it `pending` (or, for `auto`, sends it).

Nothing written by the model reaches a customer unless an approver approved it or the policy for
that kind and tier says `auto`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from drafting.compose import Composed, compose
from notifiers.rules import Segment
from services.context import Context
from services.notify_facts import IN_CHUNK, CustomerFacts, load_customers, order_value
from store import tables as t
from store.db import unit_of_work
from store.upsert import insert_do_nothing, insert_ignore

if TYPE_CHECKING:
    from services.notifications import RowBuilder

log = logging.getLogger(__name__)

# The notices a delay draft stands in for, and the other customer kinds that are drafts of their own kind.
DRAFT_KIND = {"backorder_created": "delay_notice", "eta_changed": "delay_notice", "delay_overdue": "delay_notice",
              "substitution_offer": "substitution_offer", "partial_shipment_offer": "partial_shipment_offer",
              "question_reply": "question_reply"}
OPEN = ("drafting", "pending")
STATUSES = ("drafting", "pending", "approved", "rejected", "sent", "expired", "cancelled")
STALE_WHEN_MOVED_ON = ("delay_notice", "substitution_offer", "partial_shipment_offer")
COMPOSE_LEASE = timedelta(seconds=120)
COMPOSE_BATCH = 20
WRITE_CHUNK = 1_000  # drafts per INSERT ... RETURNING


def mode(ctx: Context, notice_kind: str, tier: str, order_value: float) -> str:
    """approve | auto | template for this notice (template: not a draft at all)."""
    kind = DRAFT_KIND.get(notice_kind)
    if kind is None:
        return "template"
    return ctx.settings.drafts.mode(kind, tier, order_value)


def new_draft(builder: RowBuilder, conn: Connection, notice_kind: str, draft_mode: str, customer: CustomerFacts,
              data: dict[str, Any], *, key: str, channel: str, template_text: str, order_id: str | None,
              sku: str | None, line_ids: Sequence[str], offer_id: int | None = None,
              question: str | None = None) -> int | None:
    """Write a draft in the caller's transaction; returns its id (None when this cause wrote it already, or when
    the builder collects its unit of work's drafts to write them at once: `write_pending`)."""
    ctx, now = builder.ctx, builder.now
    cfg = ctx.settings.drafts
    ready = not ctx.settings.llm.enabled
    row = {
        "idempotency_key": key, "kind": DRAFT_KIND[notice_kind], "notice_kind": notice_kind, "mode": draft_mode,
        "customer_id": customer.customer_id, "order_id": order_id, "sku": sku, "line_ids": list(line_ids),
        "offer_id": offer_id, "locale": customer.locale, "channel": channel,
        "text": template_text if ready else "", "template_text": template_text,
        "facts": {**data, "today": ctx.today().isoformat()}, "facts_used": [], "source": "template", "model": None,
        "prompt_version": None, "grounding": {"attempts": 0, "problems": [], "fallback_reason": "no_llm"} if ready
        else {}, "question": question, "status": "pending" if ready else "drafting", "cause": builder.cause,
        "created_at": now, "updated_at": now - COMPOSE_LEASE,  # claimable by compose_due at once
        "expires_at": now + timedelta(hours=cfg.expire_hours),
        "escalate_at": now + timedelta(minutes=cfg.approval_sla_minutes), "escalated_at": None,
        "decided_by": None, "decided_at": None, "decided_via": None, "edited": False,
    }
    pending = builder.pending_drafts
    if pending is not None:  # the caller writes its unit of work's drafts at once (write_pending)
        pending.append(PendingDraft(row, draft_mode, now))
        return None
    ids = write_drafts(conn, ctx, [PendingDraft(row, draft_mode, now)])
    return ids[0] if ids else None


@dataclass(frozen=True, slots=True)
class PendingDraft:
    """A draft planned but not written yet: its row, its mode, and the time its cards are planned at."""

    row: dict[str, Any]
    mode: str
    now: datetime


def write_pending(conn: Connection, builder: RowBuilder) -> list[int]:
    """Write the drafts `builder` collected (its `pending_drafts`) and their cards; returns the new ids."""
    pending = builder.pending_drafts or []
    builder.pending_drafts = [] if builder.pending_drafts is not None else None
    return write_drafts(conn, builder.ctx, pending)


def write_drafts(conn: Connection, ctx: Context, pending: Sequence[PendingDraft]) -> list[int]:
    """Insert drafts set-based: one INSERT ... RETURNING for them all (a key written already, by an earlier
    run of this cause or earlier in this batch, returns nothing and is skipped), one SELECT of the new rows,
    then every approval card in one INSERT; a policy's auto-send is planned per draft. Returns the new ids
    in the order of `pending`."""
    if not pending:
        return []
    first: dict[str, PendingDraft] = {}
    for p in pending:
        first.setdefault(p.row["idempotency_key"], p)  # first wins, as one-by-one inserts would have it
    d = t.drafts
    stmt = insert_do_nothing(d, ["idempotency_key"])
    rows = [p.row for p in first.values()]
    new_ids: dict[str, int] = {}
    for i in range(0, len(rows), WRITE_CHUNK):
        new_ids.update((k, int(i_)) for i_, k in conn.execute(
            stmt.returning(d.c.id, d.c.idempotency_key), rows[i:i + WRITE_CHUNK]).tuples())
    if not new_ids:
        return []
    ready = not ctx.settings.llm.enabled
    if ready:
        ids = sorted(new_ids.values())
        stored = {r["id"]: r for i in range(0, len(ids), IN_CHUNK)
                  for r in conn.execute(select(d).where(d.c.id.in_(ids[i:i + IN_CHUNK]))).mappings()}
        cards: list[dict[str, Any]] = []
        for key, p in first.items():
            draft_id = new_ids.get(key)
            if draft_id is None:
                continue
            try:
                if p.mode == "auto":
                    from services import approvals

                    approvals.send_approved(conn, ctx, draft_id, decided_by="policy", via="policy", now=p.now)
                else:
                    cards += approval_rows_for(ctx, stored[draft_id], p.now)
            except Exception:
                # As when drafts were written one by one inside the planner's per-notice guard: a broken
                # template must not hold up allocation; the draft stays, listed for the approvers.
                log.exception("planning the cards of draft %s failed", draft_id)
        insert_ignore(conn, t.outbox, cards, ["idempotency_key"])
    return [new_ids[k] for k in first if k in new_ids]


def approval_rows(conn: Connection, ctx: Context, draft_id: int, now: datetime, *,
                  kind: str = "approval_request") -> list[dict[str, Any]]:
    """The cards asking the approvers (or, for an escalation, the lead) to decide on a draft."""
    d = conn.execute(select(t.drafts).where(t.drafts.c.id == draft_id)).mappings().one()
    return approval_rows_for(ctx, d, now, kind=kind)


def approval_rows_for(ctx: Context, d: Mapping[str, Any], now: datetime, *,
                      kind: str = "approval_request") -> list[dict[str, Any]]:
    """`approval_rows` of a draft row in hand."""
    from services.notifications import RowBuilder

    draft_id = d["id"]
    builder = RowBuilder(ctx, f"draft:{draft_id}", now, now)
    rows = builder.for_staff(kind, card_facts(d), scope=f"draft:{draft_id}", order_id=d["order_id"],
                             customer_id=d["customer_id"], sku=d["sku"], line_ids=d["line_ids"])
    for row in rows:
        row["urgent"] = True  # an approver's card must not wait for quiet hours or a digest
        if row["payload"]:
            row["payload"]["draft_id"] = draft_id
    return rows


def card_facts(d: Mapping[str, Any]) -> dict[str, Any]:
    """What an approval card shows: the draft, and the facts it is about."""
    facts = d["facts"] or {}
    return {"draft": {"id": d["id"], "kind": d["kind"], "notice_kind": d["notice_kind"], "text": d["text"],
                      "source": d["source"], "channel": d["channel"], "status": d["status"],
                      "decided_by": d["decided_by"], "decided_at": iso(d["decided_at"]),
                      "problems": len((d["grounding"] or {}).get("problems") or ()),
                      "fallback_reason": (d["grounding"] or {}).get("fallback_reason")},
            "customer": facts.get("customer"), "order": facts.get("order"), "items": facts.get("items") or [],
            "offer": facts.get("offer")}


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# -- the worker's jobs (services/worker.py) -------------------------------------------------------
def compose_due(ctx: Context, limit: int = COMPOSE_BATCH) -> int:
    """Ask the model for the drafts waiting for it; each is claimed first, so two workers never both ask."""
    d = t.drafts
    done = 0
    with ctx.engine.connect() as conn:
        due = conn.execute(select(d.c.id, d.c.updated_at).where(
            d.c.status == "drafting", d.c.updated_at <= ctx.now() - COMPOSE_LEASE).order_by(d.c.id).limit(limit)).all()
    for draft_id, seen in due:
        with unit_of_work(ctx.engine) as conn:
            claimed = conn.execute(update(d).where(d.c.id == draft_id, d.c.status == "drafting",
                                                   d.c.updated_at == seen).values(updated_at=ctx.now())).rowcount
            row = conn.execute(select(d).where(d.c.id == draft_id)).mappings().one() if claimed else None
        if row is None:
            continue
        facts = {**row["facts"], "history": _history(ctx, row["customer_id"], row["order_id"])}
        composed = compose(row["kind"], facts, row["template_text"], llm=ctx.settings.llm, locale=row["locale"],
                           channel=row["channel"], question=row["question"], max_chars=ctx.settings.drafts.max_chars)
        _composed(ctx, draft_id, composed)
        done += 1
    return done


def _composed(ctx: Context, draft_id: int, c: Composed) -> None:
    d = t.drafts
    now = ctx.now()
    with unit_of_work(ctx.engine) as conn:
        changed = conn.execute(update(d).where(d.c.id == draft_id, d.c.status == "drafting").values(
            text=c.text, source=c.source, model=c.model, prompt_version=c.prompt_version, facts_used=c.facts_used,
            grounding=c.grounding, status="pending", updated_at=now)).rowcount
        if not changed:
            return  # cancelled or expired while the model wrote
        draft_mode = conn.execute(select(d.c.mode).where(d.c.id == draft_id)).scalar_one()
        conn.execute(t.audit_log.insert().values(
            at=now, actor=c.model or "template", action="draft_composed", entity="draft", entity_id=str(draft_id),
            reason=c.grounding.get("fallback_reason"), before=None,
            after={"text": c.text, "source": c.source, "model": c.model, "prompt_version": c.prompt_version,
                   "facts_used": c.facts_used, "grounding": c.grounding}))
        if draft_mode == "auto":
            from services import approvals

            approvals.send_approved(conn, ctx, draft_id, decided_by="policy", via="policy", now=now)
        else:
            insert_ignore(conn, t.outbox, approval_rows(conn, ctx, draft_id, now), ["idempotency_key"])


def _history(ctx: Context, customer_id: str | None, order_id: str | None) -> list[dict[str, Any]]:
    """The messages this customer was sent about this order (the model writes in their light)."""
    if customer_id is None:
        return []
    o = t.outbox
    where = [o.c.customer_id == customer_id, o.c.status.in_(("sent", "delivered"))]
    if order_id is not None:
        where.append(o.c.order_id == order_id)
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(o.c.kind, o.c.channel, o.c.sent_at).where(*where)
                            .order_by(o.c.sent_at.desc()).limit(10)).all()
    return [{"kind": r.kind, "channel": r.channel, "sent_at": iso(r.sent_at)} for r in rows]


def expire_due(ctx: Context) -> int:
    """Undecided past expires_at: expired; a delay notice's template goes out instead when so configured."""
    from services import approvals

    d = t.drafts
    now = ctx.now()
    with unit_of_work(ctx.engine) as conn:
        ids = list(conn.execute(select(d.c.id).where(d.c.status.in_(OPEN), d.c.expires_at <= now)
                                .order_by(d.c.id).limit(500)).scalars())
        approvals.close_many(conn, ctx, ids, "expired", decided_by="expiry", via="expiry", now=now)
    return len(ids)


def escalate_due(ctx: Context) -> int:
    """Pending past the approval SLA: the lead is asked once, with the same buttons."""
    d = t.drafts
    now = ctx.now()
    with unit_of_work(ctx.engine) as conn:
        ids = list(conn.execute(select(d.c.id).where(d.c.status == "pending", d.c.escalated_at.is_(None),
                                                     d.c.escalate_at <= now).order_by(d.c.id).limit(500)).scalars())
        if ids:
            conn.execute(update(d).where(d.c.id.in_(ids)).values(escalated_at=now, updated_at=now))
        for draft_id in ids:
            insert_ignore(conn, t.outbox, approval_rows(conn, ctx, draft_id, now, kind="approval_escalation"),
                          ["idempotency_key"])
    return len(ids)


def cancel_stale(conn: Connection, ctx: Context, order_ids: Iterable[str], now: datetime) -> int:
    """Open drafts about lines that no longer wait (allocated, shipped, cancelled) are cancelled."""
    from services import approvals

    d, ln = t.drafts, t.order_lines
    order_ids = sorted(set(order_ids))
    stale: list[int] = []
    for i in range(0, len(order_ids), IN_CHUNK):
        chunk = order_ids[i:i + IN_CHUNK]
        drafts = conn.execute(select(d.c.id, d.c.order_id, d.c.line_ids).where(
            d.c.order_id.in_(chunk), d.c.status.in_(OPEN), d.c.kind.in_(STALE_WHEN_MOVED_ON))).all()
        if not drafts:
            continue
        status = {(r.order_id, r.line_id): r.status for r in conn.execute(
            select(ln.c.order_id, ln.c.line_id, ln.c.status).where(ln.c.order_id.in_({x.order_id for x in drafts})))}
        stale += [x.id for x in drafts if not any(
            status.get((x.order_id, line)) in ("backordered", "partially_allocated") for line in x.line_ids or ())]
    # Set-based: one conditional UPDATE for them all, then their audit rows and card redraws in bulk.
    return len(approvals.close_many(conn, ctx, stale, "cancelled", decided_by="allocator", via="system", now=now))


def order_values(conn: Connection, order_ids: Iterable[str]) -> dict[str, float]:
    """What each order is worth (all its lines), for the policy's approval_above_value."""
    ln = t.order_lines
    ids = sorted(set(order_ids))
    out: dict[str, float] = {}
    for i in range(0, len(ids), IN_CHUNK):
        out.update((r[0], float(r[1] or 0)) for r in conn.execute(
            select(ln.c.order_id, order_value(ln)).where(ln.c.order_id.in_(ids[i:i + IN_CHUNK]))
            .group_by(ln.c.order_id)))
    return out


def customer_of(conn: Connection, customer_id: str) -> tuple[CustomerFacts, Segment] | None:
    customer = load_customers(conn, [customer_id]).get(customer_id)
    if customer is None:
        return None
    return customer, Segment(customer.customer_id, customer.tier, customer.region, customer.tags, frozenset())
