"""Substitutions, store side: what to offer a waiting line, and what accepting or declining an offer does.

Candidates are chosen and ranked by allocation/substitutes.py; this module loads what it needs in a few
set-based queries, records offers, and switches a line to its substitute in one unit of work
(docs/substitutions.md).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from allocation.substitutes import SUBSTITUTED, Candidate, ProductInfo, SubstituteRules, Supply, candidates
from backorder.config import Settings
from notifiers.rules import Notice, Segment
from services import allocating, notifications  # modules, not names: notifications imports us (offers)
from services.context import Context
from services.notify_facts import IN_CHUNK, load_customers
from store import allocation_io as io
from store import tables as t
from store.db import unit_of_work
from store.upsert import insert_ignore

WAITING = io.WAITING_STATUSES
# Line statuses nothing more happens to; SUBSTITUTED joins shipped and cancelled.
TERMINAL_STATUSES = ("shipped", "cancelled", SUBSTITUTED)
OFFER_STATUSES = ("offered", "accepted", "declined", "withdrawn", "expired")
ACCEPT_ATTEMPTS = 5
MAX_ID = 100  # store.models.Id


class UnknownLine(LookupError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"order line {ref} not found")


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


def rules_from(settings: Settings) -> SubstituteRules:
    s = settings.substitutes
    return SubstituteRules(s.max_price_diff_pct, s.min_similarity, s.max_candidates, s.same_region_only)


@dataclass(frozen=True, slots=True)
class LineInfo:
    """An order line with what substitution needs: its customer and region, its product's name."""

    pk: int
    order_id: str
    line_id: str
    customer_id: str
    region: str | None
    sku: str
    name: str
    status: str
    qty: int
    qty_allocated: int
    qty_shipped: int
    eta: date | None
    unit_price: Any

    @property
    def waiting(self) -> int:
        return self.qty - self.qty_allocated if self.status in WAITING else 0


def _chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    ordered = sorted(set(values))
    for i in range(0, len(ordered), IN_CHUNK):
        yield ordered[i:i + IN_CHUNK]


def _lines(conn: Connection, where: Any) -> list[LineInfo]:
    l, o, c, p = t.order_lines, t.orders, t.customers, t.products
    q = (select(l.c.id, l.c.order_id, l.c.line_id, o.c.customer_id, c.c.region, l.c.sku, p.c.name, l.c.status,
                l.c.qty, l.c.qty_allocated, l.c.qty_shipped, l.c.eta, l.c.unit_price)
         .join(o, o.c.order_id == l.c.order_id).join(c, c.c.customer_id == o.c.customer_id)
         .join(p, p.c.sku == l.c.sku).where(where))
    return [LineInfo(*r) for r in conn.execute(q).tuples()]


def load_line(conn: Connection, line_pk: int | None = None, *, order_id: str | None = None,
              line_id: str | None = None) -> LineInfo:
    """One order line by its numeric id or by (order_id, line_id); raises UnknownLine."""
    l = t.order_lines
    if line_pk is not None:
        found = _lines(conn, l.c.id == line_pk)
        ref = str(line_pk)
    else:
        found = _lines(conn, and_(l.c.order_id == order_id, l.c.line_id == line_id))
        ref = f"{order_id}/{line_id}"
    if not found:
        raise UnknownLine(ref)
    return found[0]


# -- what there is to offer ----------------------------------------------------------------------------


def _product(r: Any) -> ProductInfo:
    attrs = (r.extra or {}).get("attributes")
    return ProductInfo(r.sku, r.name, float(r.price or 0), r.category,
                       dict(attrs) if isinstance(attrs, dict) else {},
                       tuple(s for s in (r.substitutes or ()) if isinstance(s, str)))


def load_catalog(conn: Connection, skus: Collection[str]) -> dict[str, ProductInfo]:
    """The products of `skus`, their configured substitutes and every product of their categories."""
    p = t.products
    cols = (p.c.sku, p.c.name, p.c.price, p.c.category, p.c.extra, p.c.substitutes)
    catalog: dict[str, ProductInfo] = {}
    for chunk in _chunks(skus):
        catalog.update((r.sku, _product(r)) for r in conn.execute(select(*cols).where(p.c.sku.in_(chunk))))
    wanted = {s for info in catalog.values() for s in info.substitutes} - catalog.keys()
    categories = {info.category.strip().casefold() for info in catalog.values() if info.category}
    for chunk in _chunks(wanted):
        catalog.update((r.sku, _product(r)) for r in conn.execute(select(*cols).where(p.c.sku.in_(chunk))))
    for chunk in _chunks(categories):
        q = select(*cols).where(func.lower(func.trim(p.c.category)).in_(chunk))
        catalog.update((r.sku, _product(r)) for r in conn.execute(q) if r.sku not in catalog)
    return catalog


def load_supply(conn: Connection, skus: Collection[str], today: date, buffer_days: int) -> dict[str, list[Supply]]:
    """Free units per warehouse now, and open PO units by the day a line could have them.

    A PO's units go to the SKU's waiting lines first (as ETA projection walks them), so that demand is
    netted out of the earliest POs: it is conservative, a new line may rank ahead of some of it. A PO
    date is the day a line gets its goods: max(expected, today) + the receiving buffer, as for ETAs.
    """
    s, l = t.stock, t.order_lines
    regions = io.warehouse_regions(conn)
    free: dict[tuple[str, str], int] = {}
    demand: dict[str, int] = {}
    pos: list[io.InboundPO] = []
    for chunk in _chunks(skus):
        for sku, wh, on_hand, allocated in conn.execute(
                select(s.c.sku, s.c.warehouse_id, s.c.on_hand, s.c.allocated).where(s.c.sku.in_(chunk))).tuples():
            free[(sku, wh)] = max(on_hand - allocated, 0)
        demand.update(conn.execute(
            select(l.c.sku, func.sum(l.c.qty - l.c.qty_allocated)).where(l.c.sku.in_(chunk), l.c.status.in_(WAITING))
            .group_by(l.c.sku)).tuples().all())
        pos += io.load_inbound(conn, chunk)
    inbound: dict[tuple[str, str], list[tuple[date, int]]] = {}
    buffer = timedelta(days=buffer_days)
    pos = sorted((po for po in pos if po.expected_at is not None), key=lambda po: (po.sku, po.expected_at, po.po_id))
    for po in pos:
        assert po.expected_at is not None
        taken = min(int(demand.get(po.sku) or 0), po.qty_open)
        demand[po.sku] = int(demand.get(po.sku) or 0) - taken
        if po.qty_open > taken:
            inbound.setdefault((po.sku, po.warehouse_id), []).append(
                (max(po.expected_at, today) + buffer, po.qty_open - taken))
    out: dict[str, list[Supply]] = {}
    for sku, wh in sorted(free.keys() | inbound.keys()):
        out.setdefault(sku, []).append(Supply(sku, wh, regions.get(wh), free.get((sku, wh), 0),
                                              tuple(sorted(inbound.get((sku, wh), ())))))
    return out


def ranked(conn: Connection, ctx: Context, lines: Sequence[LineInfo]) -> dict[int, list[Candidate]]:
    """Every candidate of each waiting line, best first (no max_candidates cut: callers exclude, then cut)."""
    waiting = [ln for ln in lines if ln.waiting > 0]
    if not waiting:
        return {}
    catalog = load_catalog(conn, {ln.sku for ln in waiting})
    supply = load_supply(conn, catalog.keys(), ctx.today(), ctx.settings.allocation.receiving_buffer_days)
    rules = dataclasses.replace(rules_from(ctx.settings), max_candidates=len(catalog) + 1)
    today = ctx.today()
    memo: dict[tuple[str, int, date | None, str | None], list[Candidate]] = {}
    out: dict[int, list[Candidate]] = {}
    for ln in waiting:
        original = catalog.get(ln.sku)
        if original is None:
            out[ln.pk] = []
            continue
        key = (ln.sku, ln.waiting, ln.eta, ln.region)
        if key not in memo:  # many lines of one SKU wait for the same quantities
            memo[key] = candidates(original, ln.waiting, ln.eta, today, catalog, supply, ln.region, rules)
        out[ln.pk] = memo[key]
    return out


def _declined(conn: Connection, lines: Sequence[LineInfo]) -> set[tuple[str, str, str]]:
    """(customer, sku, substitute) a customer said no to: never offered again for that product."""
    o = t.substitution_offers
    pairs = {(ln.customer_id, ln.sku) for ln in lines}
    out: set[tuple[str, str, str]] = set()
    for chunk in _chunks(c for c, _ in pairs):
        for r in conn.execute(select(o.c.customer_id, o.c.sku, o.c.substitute_sku).where(
                o.c.customer_id.in_(chunk), o.c.status == "declined")):
            if (r.customer_id, r.sku) in pairs:
                out.add((r.customer_id, r.sku, r.substitute_sku))
    return out


def _offered(conn: Connection, line_pks: Collection[int]) -> set[tuple[int, str]]:
    o = t.substitution_offers
    out: set[tuple[int, str]] = set()
    for chunk in _chunks(line_pks):
        out.update(conn.execute(select(o.c.line_pk, o.c.substitute_sku).where(o.c.line_pk.in_(chunk))).tuples())
    return out


def best_offers(conn: Connection, ctx: Context, line_pks: Collection[int]) -> dict[int, Candidate]:
    """The best candidate to offer each waiting line, leaving out what its customer declined for that
    product before and what was offered on the line already. Lines with nothing to offer are left out."""
    if not ctx.settings.substitutes.enabled or not line_pks:
        return {}
    l = t.order_lines
    lines = [ln for chunk in _chunks(line_pks) for ln in _lines(conn, and_(l.c.id.in_(chunk), l.c.status.in_(WAITING)))]
    by_line = ranked(conn, ctx, lines)
    if not by_line:
        return {}
    declined = _declined(conn, lines)
    offered = _offered(conn, by_line.keys())
    out: dict[int, Candidate] = {}
    for ln in lines:
        for cand in by_line.get(ln.pk, ()):
            if (ln.customer_id, ln.sku, cand.sku) not in declined and (ln.pk, cand.sku) not in offered:
                out[ln.pk] = cand
                break
    return out


def record_offer(conn: Connection, line_pk: int, candidate: Candidate, now: datetime) -> int | None:
    """Record `candidate` as offered on the line; returns the offer's id (the existing one when this
    substitute was offered on the line before: one offer per line and substitute), None when the line
    does not exist or no longer waits."""
    try:
        ln = load_line(conn, line_pk)
    except UnknownLine:
        return None
    if ln.waiting <= 0:
        return None  # nothing waits on the line any more: nothing to replace
    o = t.substitution_offers
    insert_ignore(conn, o, [{
        "line_pk": line_pk, "order_id": ln.order_id, "line_id": ln.line_id, "customer_id": ln.customer_id,
        "sku": ln.sku, "substitute_sku": candidate.sku, "qty": ln.waiting, "status": "offered",
        "reasons": list(candidate.reasons), "created_at": now, "decided_at": None, "new_line_pk": None,
    }], ["line_pk", "substitute_sku"])
    return conn.execute(select(o.c.id).where(o.c.line_pk == line_pk, o.c.substitute_sku == candidate.sku)).scalar()


def candidate_json(c: Candidate) -> dict[str, Any]:
    return {"sku": c.sku, "name": c.name, "source": c.source, "warehouse_id": c.warehouse_id,
            "available_on": c.available_on.isoformat(), "price": c.price, "price_diff_pct": c.price_diff_pct,
            "similarity": c.similarity, "reasons": list(c.reasons)}


def line_json(ln: LineInfo) -> dict[str, Any]:
    return {"id": ln.pk, "order_id": ln.order_id, "line_id": ln.line_id, "sku": ln.sku, "name": ln.name,
            "status": ln.status, "qty_waiting": ln.waiting, "eta": ln.eta.isoformat() if ln.eta else None,
            "customer_id": ln.customer_id}


def candidates_for_line(conn: Connection, ctx: Context, line_pk: int) -> dict[str, Any]:
    """GET /substitutes: the line and its candidates with the reasons (none when it does not wait).

    Substitutes its customer declined for this product are left out; ones offered already stay listed.
    """
    ln = load_line(conn, line_pk)
    found = ranked(conn, ctx, [ln]).get(ln.pk, [])
    declined = _declined(conn, [ln])
    shown = [c for c in found if (ln.customer_id, ln.sku, c.sku) not in declined]
    shown = shown[:ctx.settings.substitutes.max_candidates]
    return {"line": line_json(ln), "candidates": [candidate_json(c) for c in shown]}


def withdraw_stale(conn: Connection, line_pks: Collection[int], now: datetime) -> int:
    """Offers still open on lines that no longer wait are withdrawn; returns how many."""
    o, l = t.substitution_offers, t.order_lines
    done = 0
    for chunk in _chunks(line_pks):
        moved_on = select(l.c.id).where(l.c.id.in_(chunk), l.c.status.notin_(WAITING))
        done += conn.execute(update(o).where(o.c.line_pk.in_(moved_on), o.c.status == "offered")
                             .values(status="withdrawn", decided_at=now)).rowcount or 0
    return done


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
