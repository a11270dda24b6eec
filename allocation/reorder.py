"""Reorder suggestions: when a SKU's projected stock in a warehouse falls below its reorder point,
move surplus from another warehouse (it arrives sooner) or buy.

Pure: plain data in, plain data out. The service (services/reorder.py) loads the positions in bulk
and turns each suggestion into a task; docs/reorder.md explains the arithmetic with an example.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

PURCHASE = "purchase"
TRANSFER = "transfer"


@dataclass(frozen=True, slots=True)
class Override:
    """Configured levels of one SKU ([reorder.overrides.<sku>]); None: computed from demand."""

    reorder_point: int | None = None
    reorder_qty: int | None = None
    supplier_id: str | None = None


@dataclass(frozen=True, slots=True)
class Params:
    today: date
    demand_window_days: int = 28
    safety_days: int = 7
    default_lead_time_days: int = 14
    transfer_days: int = 2
    transfer_first: bool = True


@dataclass(frozen=True, slots=True)
class Position:
    """One SKU in one warehouse as the check sees it.

    waiting: units of waiting order lines this warehouse is to serve; demand: units ordered from it over
    the demand window; inbound: (expected date or None, units) of open PO lines and approved suggestions
    coming here; committed_out: units of approved transfers still to leave.
    """

    warehouse_id: str
    on_hand: int = 0
    allocated: int = 0
    waiting: int = 0
    demand: int = 0
    inbound: tuple[tuple[date | None, int], ...] = ()
    committed_out: int = 0

    def free(self) -> int:
        """Units on the shelf nobody is owed: what could physically leave today."""
        return self.on_hand - self.allocated - self.waiting - self.committed_out

    def inbound_within(self, last_day: date) -> int:
        # A PO without a date is not counted: nothing says it arrives within the lead time.
        return sum(qty for day, qty in self.inbound if day is not None and day <= last_day)


@dataclass(frozen=True, slots=True)
class Item:
    """A SKU: its supplier, lead time (the product's own, else its supplier's; None: the default),
    the reorder point master data gives it (None or 0: none), and its positions."""

    sku: str
    positions: tuple[Position, ...]
    supplier_id: str | None = None
    lead_time_days: int | None = None
    reorder_point: int | None = None


@dataclass(frozen=True, slots=True)
class Levels:
    point: int
    qty: int
    projected: int  # on hand - allocated - waiting - committed out + inbound within the lead time


@dataclass(frozen=True, slots=True)
class Suggestion:
    kind: str  # PURCHASE or TRANSFER
    sku: str
    warehouse_id: str  # where the units are needed
    qty: int
    expected_at: date
    projected: int
    reorder_point: int
    lead_time_days: int
    supplier_id: str | None = None
    from_warehouse_id: str | None = None
    demand_per_day: float = 0.0
    source_levels: Mapping[str, int] = field(default_factory=dict)  # transfers: the source's point and free units


def lead_time(item: Item, params: Params) -> int:
    return item.lead_time_days if item.lead_time_days is not None else params.default_lead_time_days


def levels(item: Item, pos: Position, params: Params, override: Override | None = None) -> Levels:
    """The warehouse's reorder point and quantity, and its projected available stock.

    Computed levels cover the lead time plus the safety days at the recent daily demand, rounded up
    (integer arithmetic: no float drift decides whether a suggestion is made).
    """
    override = override or Override()
    lead = lead_time(item, params)
    cover = -(-pos.demand * (lead + params.safety_days) // params.demand_window_days)
    if override.reorder_point is not None:
        point = override.reorder_point
    elif item.reorder_point:
        point = item.reorder_point
    else:
        point = cover
    qty = override.reorder_qty if override.reorder_qty is not None else cover
    projected = pos.free() + pos.inbound_within(params.today + timedelta(days=lead))
    return Levels(point, qty, projected)


def suggest(items: Iterable[Item], params: Params, overrides: Mapping[str, Override] | None = None,
            skip: Iterable[tuple[str, str, str]] = ()) -> list[Suggestion]:
    """Every suggestion the items call for, SKU by SKU.

    `skip`: (kind, sku, warehouse) not to suggest now (a rejection still fresh). A warehouse below its point
    first draws on the warehouse with the most surplus (free units above its own point), up to what it
    wants; whatever of its shortfall is left is bought.
    """
    overrides = overrides or {}
    skipped = set(skip)
    out: list[Suggestion] = []
    for item in items:
        out += _for_item(item, params, overrides.get(item.sku) or Override(), skipped)
    return out


def _for_item(item: Item, params: Params, override: Override, skipped: set[tuple[str, str, str]]) -> list[Suggestion]:
    lead = lead_time(item, params)
    window = params.demand_window_days
    by_wh = {p.warehouse_id: (p, levels(item, p, params, override)) for p in item.positions}
    # A source gives only units on its shelf now, and keeps its own point: in-transit stock is not lent.
    surplus = {w: p.free() - lv.point for w, (p, lv) in by_wh.items() if p.free() - lv.point > 0}
    short = sorted((w for w, (_, lv) in by_wh.items() if lv.projected < lv.point),
                   key=lambda w: (by_wh[w][1].projected - by_wh[w][1].point, w))
    supplier = override.supplier_id if override.supplier_id is not None else item.supplier_id
    out: list[Suggestion] = []
    for w in short:
        pos, lv = by_wh[w]
        shortfall = lv.point - lv.projected
        want = max(lv.qty, shortfall)
        common = {"sku": item.sku, "warehouse_id": w, "projected": lv.projected, "reorder_point": lv.point,
                  "lead_time_days": lead, "demand_per_day": round(pos.demand / window, 3)}
        moved = 0
        if params.transfer_first and (TRANSFER, item.sku, w) not in skipped:
            source = _best_source(surplus, exclude=w)
            if source is not None:
                moved = min(want, surplus[source])
                surplus[source] -= moved
                src_pos, src_lv = by_wh[source]
                out.append(Suggestion(TRANSFER, qty=moved, from_warehouse_id=source,
                                      expected_at=params.today + timedelta(days=params.transfer_days),
                                      source_levels={"reorder_point": src_lv.point, "free": src_pos.free()},
                                      **common))
        if shortfall - moved > 0 and (PURCHASE, item.sku, w) not in skipped:
            out.append(Suggestion(PURCHASE, qty=want - moved, supplier_id=supplier,
                                  expected_at=params.today + timedelta(days=lead), **common))
    return out


def _best_source(surplus: Mapping[str, int], exclude: str) -> str | None:
    candidates = [(n, w) for w, n in surplus.items() if w != exclude and n > 0]
    if not candidates:
        return None
    return min(candidates, key=lambda c: (-c[0], c[1]))[1]


def home_warehouse(region: str | None, stocked: Sequence[str], regions: Mapping[str, str | None],
                   warehouse_order: Sequence[str], every: Sequence[str]) -> str | None:
    """The warehouse an order line's demand counts against: the customer's region's (one stocking the SKU
    first), else the first of [allocation] warehouse_order that stocks it, else the first stocking it,
    else the first warehouse there is. Order lines name no warehouse; this is where they would be served."""
    if region is not None:
        local = [w for w in stocked if regions.get(w) == region]
        if local:
            return min(local)
    if stocked:
        ranked = [w for w in warehouse_order if w in stocked]
        return ranked[0] if ranked else min(stocked)
    if region is not None:
        local = sorted(w for w in every if regions.get(w) == region)
        if local:
            return local[0]
    ranked = [w for w in warehouse_order if w in every]
    if ranked:
        return ranked[0]
    return min(every) if every else None
