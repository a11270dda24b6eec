"""Substitutions, what to offer: the candidates for a waiting line, the best offer per line, and offers
recorded or withdrawn (docs/substitutions.md). Deciding on an offer is services/substitutions.py.

Candidates are chosen and ranked by allocation/substitutes.py; this module loads what it needs in a few
set-based queries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from allocation.model import InboundPO
from allocation.substitutes import Candidate, ProductInfo, SubstituteRules, Supply, candidates
from backorder.config import Settings
from services.context import Context
from services.notify_facts import IN_CHUNK
from store import allocation_io as io
from store import tables as t
from store.pass_reads import load_inbound
from store.upsert import insert_ignore

WAITING = io.WAITING_STATUSES


class UnknownLine(LookupError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"order line {ref} not found")


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
    pos: list[InboundPO] = []
    for chunk in _chunks(skus):
        for sku, wh, on_hand, allocated in conn.execute(
                select(s.c.sku, s.c.warehouse_id, s.c.on_hand, s.c.allocated).where(s.c.sku.in_(chunk))).tuples():
            free[(sku, wh)] = max(on_hand - allocated, 0)
        demand.update(conn.execute(
            select(l.c.sku, func.sum(l.c.qty - l.c.qty_allocated)).where(l.c.sku.in_(chunk), l.c.status.in_(WAITING))
            .group_by(l.c.sku)).tuples().all())
        pos += load_inbound(conn, chunk)
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


def _any_candidate_possible(conn: Connection, line_pks: Collection[int]) -> bool:
    """Whether a product of these lines has a configured substitute or a category (allocation/substitutes.py
    `_pool` draws candidates from nothing else). Most backorders have neither: one small query then spares
    the line, catalog, stock, demand and PO reads of the search."""
    l, p = t.order_lines, t.products
    for chunk in _chunks(line_pks):
        q = (select(p.c.category, p.c.substitutes).join(l, l.c.sku == p.c.sku)
             .where(l.c.id.in_(chunk), l.c.status.in_(WAITING)))
        for category, substitutes in conn.execute(q).tuples():
            if (category or "").strip() or any(isinstance(s, str) for s in (substitutes or ())):
                return True
    return False


def best_offers(conn: Connection, ctx: Context, line_pks: Collection[int]) -> dict[int, Candidate]:
    """The best candidate to offer each waiting line, leaving out what its customer declined for that
    product before and what was offered on the line already. Lines with nothing to offer are left out."""
    if not ctx.settings.substitutes.enabled or not line_pks or not _any_candidate_possible(conn, line_pks):
        return {}
    l = t.order_lines
    lines = [ln for chunk in _chunks(line_pks) for ln in _lines(conn, and_(l.c.id.in_(chunk), l.c.status.in_(WAITING)))]
    by_line = ranked(conn, ctx, lines)
    if not any(by_line.values()):
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
