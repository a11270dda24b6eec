"""Substitutions, deciding: what accepting or declining an offer does (docs/substitutions.md).

Accepting switches a line to its substitute in one unit of work. What to offer (candidates, the best
offer per line, recording and withdrawing offers) is services/substitute_search.py; its public names
are re-exported here, where the front doors have always found them.
"""

from __future__ import annotations

import random
import time
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import DBAPIError

from allocation.substitutes import SUBSTITUTED
from notifiers.rules import Notice, Segment
from services import allocating, notifications  # modules, not names: notifications imports us (offers)
from services.context import Context
from services.notify_facts import load_customers
from services.substitute_search import (
    WAITING,
    LineInfo,
    UnknownLine,
    best_offers,
    candidate_json,
    candidates_for_line,
    line_json,
    load_catalog,
    load_line,
    load_supply,
    ranked,
    record_offer,
    rules_from,
    withdraw_stale,
)
from store import allocation_io as io
from store import tables as t
from store.db import unit_of_work
from store.upsert import insert_ignore

__all__ = [
    "ACCEPT_ATTEMPTS", "OFFER_STATUSES", "TERMINAL_STATUSES", "WAITING", "LineInfo", "OfferClosed", "UnknownLine",
    "UnknownOffer", "accept", "best_offers", "candidate_json", "candidates_for_line", "decline", "line_json",
    "load_catalog", "load_line", "load_supply", "ranked", "record_offer", "rules_from", "withdraw_stale",
]

# Line statuses nothing more happens to; SUBSTITUTED joins shipped and cancelled.
TERMINAL_STATUSES = ("shipped", "cancelled", SUBSTITUTED)
OFFER_STATUSES = ("offered", "accepted", "declined", "withdrawn", "expired")
ACCEPT_ATTEMPTS = 5
MAX_ID = 100  # store.models.Id


class UnknownOffer(LookupError):
    """No such offer, or not this customer's: the same answer, so guessing ids reveals nothing."""

    def __init__(self, offer_id: int) -> None:
        super().__init__(f"no substitution offer {offer_id}")
        self.offer_id = offer_id


class OfferClosed(Exception):
    """The offer was decided already (or withdrawn because the line stopped waiting or it went stale)."""

    def __init__(self, offer_id: int, status: str, decided_at: datetime | None) -> None:
        when = f" at {decided_at.isoformat()}" if decided_at else ""
        super().__init__(f"substitution offer {offer_id} is already {status}{when}")
        self.offer_id = offer_id
        self.status = status
        self.decided_at = decided_at


# -- deciding --------------------------------------------------------------------------------------------


def _offer(conn: Connection, offer_id: int, customer_id: str | None, *, lock: bool) -> Any:
    o = t.substitution_offers
    q = select(o).where(o.c.id == offer_id)
    row = conn.execute(q.with_for_update() if lock else q).first()
    if row is None or (customer_id is not None and row.customer_id != customer_id):
        raise UnknownOffer(offer_id)
    return row


def _close(conn: Connection, offer_id: int, status: str, now: datetime, **values: Any) -> None:
    o = t.substitution_offers
    conn.execute(update(o).where(o.c.id == offer_id).values(status=status, decided_at=now, **values))


def _still_sooner(conn: Connection, ctx: Context, ln: LineInfo, substitute_sku: str) -> bool:
    """An offer is no reservation: on acceptance the substitute must still beat waiting."""
    return any(c.sku == substitute_sku for c in ranked(conn, ctx, [ln]).get(ln.pk, ()))


def _new_line_id(conn: Connection, order_id: str, line_id: str) -> str:
    """LINE-S1, or -S2, ... when taken; the original id is clipped to keep within the column's 100."""
    l = t.order_lines
    taken = set(conn.execute(select(l.c.line_id).where(l.c.order_id == order_id)).scalars())
    n = 1
    while True:
        suffix = f"-S{n}"
        candidate = line_id[:MAX_ID - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        n += 1


def _shrunk_status(ln: LineInfo) -> str:
    # The line keeps the units it holds or shipped and nothing waits on it any more.
    if ln.qty_allocated == 0:
        return SUBSTITUTED
    return "shipped" if ln.qty_shipped >= ln.qty_allocated else "allocated"


def accept(ctx: Context, offer_id: int, *, customer_id: str | None, via: str, actor: str) -> dict[str, Any]:
    """Switch the waiting part of the offer's line to the substitute, in one unit of work.

    The waiting units move to a new line of the order (LINE-S1) for the substitute, which is allocated
    at once where stock allows; the original keeps what it holds or shipped (SUBSTITUTED when nothing),
    so its waiting demand is released to the lines behind it. Raises UnknownOffer, OfferClosed.
    A deadlock or lock timeout (PostgreSQL) rolls the unit of work back and tries again, as the inbox does.
    """
    from services.inbox import TRANSIENT_SQLSTATES  # here: services.inbox imports this module's importers

    for attempt in range(1, ACCEPT_ATTEMPTS + 1):
        try:
            return _accept_once(ctx, offer_id, customer_id=customer_id, via=via, actor=actor)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in TRANSIENT_SQLSTATES or attempt == ACCEPT_ATTEMPTS:
                raise
            time.sleep(random.uniform(0, 0.005 * 2 ** attempt))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _accept_once(ctx: Context, offer_id: int, *, customer_id: str | None, via: str, actor: str) -> dict[str, Any]:
    now = ctx.now()
    cause = f"substitution:{offer_id}"
    with unit_of_work(ctx.engine) as conn:
        peek = _offer(conn, offer_id, customer_id, lock=False)
        # SKU locks before the offer and line rows, in the order every allocation pass takes them.
        io.lock_skus(conn, {peek.sku, peek.substitute_sku})
        offer = _offer(conn, offer_id, customer_id, lock=True)
        if offer.status != "offered":
            raise OfferClosed(offer_id, offer.status, offer.decided_at)
        ln = load_line(conn, offer.line_pk)
        if ln.waiting <= 0 or not _still_sooner(conn, ctx, ln, offer.substitute_sku):
            _close(conn, offer_id, "withdrawn", now)
            summary = None
        else:
            summary = _switch(conn, ctx, offer, ln, now, cause, via=via, actor=actor)
    if summary is None:
        raise OfferClosed(offer_id, "withdrawn", now)
    return summary


def _switch(conn: Connection, ctx: Context, offer: Any, ln: LineInfo, now: datetime, cause: str, *, via: str,
            actor: str) -> dict[str, Any]:
    l, o = t.order_lines, t.substitution_offers
    waiting = ln.waiting
    new_line_id = _new_line_id(conn, ln.order_id, ln.line_id)
    new_pk = conn.execute(insert(l).returning(l.c.id).values(
        order_id=ln.order_id, line_id=new_line_id, sku=offer.substitute_sku, qty=waiting, unit_price=ln.unit_price,
        qty_allocated=0, qty_shipped=0, status="backordered", backordered_at=now)).scalar_one()
    status = _shrunk_status(ln)
    conn.execute(update(l).where(l.c.id == ln.pk).values(qty=ln.qty_allocated, status=status, eta=None,
                                                         eta_reason=None))
    _close(conn, offer.id, "accepted", now, new_line_pk=new_pk)
    conn.execute(update(o).where(o.c.line_pk == ln.pk, o.c.id != offer.id, o.c.status == "offered")
                 .values(status="withdrawn", decided_at=now))
    ref, new_ref = f"{ln.order_id}/{ln.line_id}", f"{ln.order_id}/{new_line_id}"
    io.write_audit(conn, [
        {"entity": "order_line", "entity_id": ref, "action": "substitution_accepted",
         "before": {"sku": ln.sku, "qty": ln.qty, "status": ln.status, "qty_allocated": ln.qty_allocated,
                    "qty_shipped": ln.qty_shipped, "eta": ln.eta},
         "after": {"sku": ln.sku, "qty": ln.qty_allocated, "status": status, "substituted_by": new_ref,
                   "offer_id": offer.id, "via": via}},
        {"entity": "order_line", "entity_id": new_ref, "action": "substitution_accepted", "before": None,
         "after": {"sku": offer.substitute_sku, "qty": waiting, "status": "backordered", "replaces": ref,
                   "offer_id": offer.id, "via": via}},
    ], actor, cause, now)
    conn.execute(insert(t.domain_events).values(type="line_substituted", created_at=now, cause=cause, data={
        "order_id": ln.order_id, "line_id": ln.line_id, "line_pk": ln.pk, "sku": ln.sku,
        "new_line_id": new_line_id, "new_line_pk": new_pk, "substitute_sku": offer.substitute_sku, "qty": waiting,
        "offer_id": offer.id}))
    # The allocator decides where the units come from (its audit rows say so); the cause ties them to the offer.
    allocating.run_pass(conn, ctx, {offer.substitute_sku, ln.sku}, cause, new_line_pks=[new_pk])
    # Pending notices about the original's wait (backorder created, new date) no longer apply.
    notifications.cancel_stale(conn, [ln.order_id], now)
    new = load_line(conn, new_pk)
    available_on = ctx.today().isoformat() if new.waiting == 0 else (new.eta.isoformat() if new.eta else None)
    _tell(conn, ctx, "substitution_confirmed", offer, ln, now, cause, line_ids=[ln.line_id, new_line_id],
          qty=waiting, substitute_name=new.name, available_on=available_on)
    return {"offer_id": offer.id, "status": "accepted", "decided_at": now.isoformat(), "via": via,
            "order_id": ln.order_id, "customer_id": ln.customer_id, "sku": ln.sku,
            "substitute_sku": offer.substitute_sku, "qty": waiting,
            "original_line": {"id": ln.pk, "line_id": ln.line_id, "qty": ln.qty_allocated, "status": status},
            "new_line": {**line_json(new), "qty": new.qty, "qty_allocated": new.qty_allocated},
            "available_on": available_on}


def decline(ctx: Context, offer_id: int, *, customer_id: str | None, via: str, actor: str) -> dict[str, Any]:
    """The customer said no: the line keeps waiting, and this substitute is never offered again to this
    customer for this product. Raises UnknownOffer, OfferClosed."""
    now = ctx.now()
    cause = f"substitution:{offer_id}"
    with unit_of_work(ctx.engine) as conn:
        offer = _offer(conn, offer_id, customer_id, lock=True)
        if offer.status != "offered":
            raise OfferClosed(offer_id, offer.status, offer.decided_at)
        _close(conn, offer_id, "declined", now)
        ln = load_line(conn, offer.line_pk)
        io.write_audit(conn, [{
            "entity": "order_line", "entity_id": f"{ln.order_id}/{ln.line_id}", "action": "substitution_declined",
            "before": {"offer_id": offer.id, "status": "offered"},
            "after": {"offer_id": offer.id, "status": "declined", "substitute_sku": offer.substitute_sku,
                      "via": via}}], actor, cause, now)
        p = t.products
        name = conn.execute(select(p.c.name).where(p.c.sku == offer.substitute_sku)).scalar() or offer.substitute_sku
        _tell(conn, ctx, "substitution_declined", offer, ln, now, cause, line_ids=[ln.line_id], qty=offer.qty,
              substitute_name=name, available_on=None)
    return {"offer_id": offer.id, "status": "declined", "decided_at": now.isoformat(), "via": via,
            "order_id": ln.order_id, "customer_id": ln.customer_id, "sku": ln.sku,
            "substitute_sku": offer.substitute_sku, "line": line_json(ln)}


def _tell(conn: Connection, ctx: Context, kind: str, offer: Any, ln: LineInfo, now: datetime, cause: str, *,
          line_ids: list[str], qty: int, substitute_name: str, available_on: str | None) -> None:
    """The customer's confirmation (or acknowledgement), planned like any notice, in this transaction."""
    customer = load_customers(conn, [ln.customer_id]).get(ln.customer_id)
    if customer is None:
        return
    o = t.orders
    order = conn.execute(select(o.c.source, o.c.channel).where(o.c.order_id == ln.order_id)).first()
    sources = frozenset(x for x in (order.source, order.channel) if x) if order else frozenset()
    data = {"customer": customer.template(), "order": {"id": ln.order_id},
            "offer": {"id": offer.id, "sku": ln.sku, "name": ln.name, "substitute_sku": offer.substitute_sku,
                      "substitute_name": substitute_name, "qty": qty, "available_on": available_on}}
    builder = notifications.RowBuilder(ctx, cause, now, now)
    scope = f"offer:{offer.id}"
    try:
        rows = builder.for_customer(conn, kind, customer, data,
                                    Segment(customer.customer_id, customer.tier, customer.region, customer.tags,
                                            sources),
                                    scope=scope, order_id=ln.order_id, line_ids=line_ids)
    except Exception as exc:
        # As in the planner: a missing or broken template must not undo the customer's decision; the
        # message is recorded dead with the reason, where the KPIs and `notifications list` show it.
        notice = Notice(kind, "customer", order_id=ln.order_id, customer_id=ln.customer_id, scope=scope)
        rows = [{**builder.unplannable(notice, exc), "facts": data, "line_ids": line_ids}]
    insert_ignore(conn, t.outbox, rows, ["idempotency_key"])
