"""What a customer is offered when a line starts to wait: a substitute, or shipping what is ready now.

Planned in the transaction that made the lines wait, like every notice; the drafts policy decides
whether an offer goes out from its template or waits for a person's approval (services/drafts.py).
A reply to a question the intents could not answer is planned here too: a draft a person approves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from notifiers.rules import Notice, Segment
from services import drafts, substitute_search
from services.notify_facts import Facts, item, load_customers
from store import tables as t
from store.upsert import insert_ignore

if TYPE_CHECKING:
    from services.notifications import RowBuilder


def plan_offers(conn: Connection, builder: RowBuilder, notices: Sequence[Notice], facts: Facts) -> list[dict[str, Any]]:
    """Offers for lines that just started to wait: the best substitute per line, and per order with some
    units reserved and some waiting, the choice to ship what is ready now."""
    rows: list[dict[str, Any]] = []
    if not notices:
        return rows
    pks = [pk for n in notices for pk in n.line_pks]
    best = substitute_search.best_offers(conn, builder.ctx, pks) if builder.ctx.settings.substitutes.enabled else {}
    for pk, candidate in sorted(best.items()):
        ln = facts.lines[pk]
        customer, order = facts.customers.get(ln.customer_id), facts.orders.get(ln.order_id)
        offer_id = substitute_search.record_offer(conn, pk, candidate, builder.now)
        if customer is None or order is None or offer_id is None:
            continue
        data = {"customer": customer.template(), "order": order.template(), "items": [item(ln)],
                "offer": {"id": offer_id, "sku": ln.sku, "name": ln.name, "substitute_sku": candidate.sku,
                          "substitute_name": candidate.name, "qty": ln.waiting,
                          "available_on": candidate.available_on.isoformat(),
                          "price_diff_pct": candidate.price_diff_pct, "reasons": list(candidate.reasons)}}
        # Signed accept / decline links for e-mail, when [links] is configured (bot/offer_links.py).
        from services.customer_actions import offer_links  # it answers offers, so it needs the allocator: import late

        data["offer"].update(offer_links(builder.ctx.settings, offer_id) or {})
        rows += builder.for_customer(conn, "substitution_offer", customer, data, _segment(customer, order.sources),
                                     scope=f"offer:{offer_id}", order_id=ln.order_id, line_ids=[ln.line_id],
                                     sku=ln.sku, offer_id=offer_id)
    for notice in notices:
        partial = [facts.lines[pk] for pk in notice.line_pks if facts.lines[pk].status == "partially_allocated"]
        customer = facts.customers.get(notice.customer_id or "")
        order = facts.orders.get(notice.order_id or "")
        if not partial or customer is None or order is None:
            continue
        from services.notifications import RowBuilder

        # One such offer per order, whatever later change makes another line wait: the cause is the order.
        once = RowBuilder(builder.ctx, f"partial:{order.order_id}", builder.now, builder.occurred_at)
        once.order_values = builder.order_values
        once.pending_drafts = builder.pending_drafts  # written with the caller's drafts (drafts.write_pending)
        data = {"customer": customer.template(), "order": order.template(), "items": [item(ln) for ln in partial]}
        rows += once.for_customer(conn, "partial_shipment_offer", customer, data, _segment(customer, order.sources),
                                  scope=f"partial:{order.order_id}", order_id=order.order_id,
                                  line_ids=[ln.line_id for ln in partial])
    return rows


def question_reply(conn: Connection, builder: RowBuilder, customer_id: str, question: str, task_id: int,
                   asked_on: str | None = None) -> None:
    """A reply to a customer's question for a person to approve (or, by policy, the template's holding answer)."""
    customer = load_customers(conn, [customer_id]).get(customer_id)
    if customer is None or drafts.mode(builder.ctx, "question_reply", customer.tier, 0.0) == "template":
        return  # the chat answer already said a person will reply: the holding template would say it twice
    data = {"customer": customer.template(), "order": None, "items": [], "task": {"id": task_id},
            "question": question}
    # The answer goes where the question came from (WhatsApp, SMS, e-mail), else to their first channel.
    hint = asked_on if asked_on in REPLYABLE else None
    rows = builder.for_customer(conn, "question_reply", customer, data, _segment(customer, frozenset()),
                                scope=f"task:{task_id}", channel_hint=hint)
    insert_ignore(conn, t.outbox, rows, ["idempotency_key"])


REPLYABLE = ("whatsapp", "sms", "email")


def _segment(customer: Any, sources: frozenset[str]) -> Segment:
    return Segment(customer.customer_id, customer.tier, customer.region, customer.tags, sources)
