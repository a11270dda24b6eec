"""The allocation engine: share stock among waiting lines, release, cancel, ship.

Every function mutates the given Line/Stock objects in place and returns an
AllocationResult naming what changed, so the service layer persists exactly that in one
unit of work. Callers pass every open line and every stock row of the affected SKUs (and,
for ship-complete orders, of every SKU those orders touch).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from allocation.model import (
    ALLOCATED,
    BACKORDERED,
    CANCELLED,
    PARTIALLY_ALLOCATED,
    SHIPPED,
    DomainEvent,
    Line,
    Move,
    Stock,
)
from allocation.ordering import sort_key_for
from allocation.policy import AllocationPolicy
from allocation.result import AllocationResult
from allocation.warehouses import StockIndex

Plan = list[tuple[Stock, int]]

_WAS_WAITING = (BACKORDERED, PARTIALLY_ALLOCATED)


def line_status(line: Line) -> str:
    """The status a line's quantities imply (see the constants in model.py)."""
    if line.cancelled:
        return CANCELLED
    if line.qty_shipped >= line.qty:
        return SHIPPED
    if line.qty_allocated == line.qty:
        return ALLOCATED
    if line.qty_allocated > 0:
        return PARTIALLY_ALLOCATED
    return BACKORDERED


def _ship_complete_orders(pool: Iterable[Line]) -> set[str]:
    # One ship-complete line makes the whole order all-or-nothing: a partial parcel is
    # exactly what the customer asked not to get.
    return {ln.order_id for ln in pool if ln.ship_complete and not ln.cancelled}


def _plan(
    line: Line, need: int, prefs: list[Stock], allow_split: bool, reserved: dict[int, int] | None
) -> Plan:
    """Which stocks `need` units would come from; `reserved` holds units already promised
    by a tentative ship-complete plan (keyed by id(stock))."""
    if allow_split:
        plan: Plan = []
        for stock in prefs:
            avail = stock.on_hand - stock.allocated
            if reserved:
                avail -= reserved.get(id(stock), 0)
            if avail <= 0:
                continue
            take = need if avail >= need else avail
            plan.append((stock, take))
            need -= take
            if need == 0:
                break
        return plan
    candidates = prefs
    if line.allocations:
        # No split: a line already holding units in W can only ever grow in W.
        held_in = line.allocations.keys()
        candidates = [s for s in prefs if s.warehouse_id in held_in]
    best: Stock | None = None
    best_avail = 0
    for stock in candidates:
        avail = stock.on_hand - stock.allocated
        if reserved:
            avail -= reserved.get(id(stock), 0)
        if avail >= need:
            return [(stock, need)]
        if avail > best_avail:
            best, best_avail = stock, avail
    return [(best, best_avail)] if best is not None else []


def _plan_order(group: list[Line], index: StockIndex, allow_split: bool) -> list[tuple[Line, Plan]] | None:
    """Plans filling every line of a ship-complete order in full, or None if any falls short."""
    reserved: dict[int, int] = {}
    plans: list[tuple[Line, Plan]] = []
    for line in group:
        need = line.qty - line.qty_allocated
        plan = _plan(line, need, index.preferred(line.sku, line.region), allow_split, reserved)
        if sum(q for _, q in plan) < need:
            return None
        for stock, q in plan:
            reserved[id(stock)] = reserved.get(id(stock), 0) + q
        plans.append((line, plan))
    return plans


def _apply(line: Line, plan: Plan, result: AllocationResult, new_ids: Collection[str]) -> None:
    previous = line.status
    got: dict[str, int] = {}
    total = 0
    allocations = line.allocations
    for stock, q in plan:
        wh = stock.warehouse_id
        stock.allocated += q
        allocations[wh] = allocations.get(wh, 0) + q
        got[wh] = q  # a plan names each warehouse once
        total += q
        result.moves.append(Move("allocate", line.line_id, line.order_id, line.sku, wh, q))
        result.changed_stocks[(stock.sku, wh)] = stock
    line.qty_allocated += total
    status = line_status(line)
    line.status = status
    result.changed_lines[line.line_id] = line
    result.events.append(
        DomainEvent(
            "line_allocated" if status == ALLOCATED else "line_partially_allocated",
            {
                "line_id": line.line_id,
                "order_id": line.order_id,
                "sku": line.sku,
                "qty": line.qty,
                "qty_allocated": line.qty_allocated,
                "allocated_now": total,
                "warehouses": got,
                "previous_status": previous,
                "status": status,
            },
        )
    )
    # A brand-new line's default status is "backordered" but nobody was told it waited.
    if status == ALLOCATED and previous in _WAS_WAITING and line.line_id not in new_ids:
        result.events.append(
            DomainEvent(
                "backorder_resolved",
                {
                    "line_id": line.line_id,
                    "order_id": line.order_id,
                    "sku": line.sku,
                    "qty": line.qty,
                    "previous_status": previous,
                },
            )
        )


def allocate(
    lines: Iterable[Line],
    stocks: Iterable[Stock],
    policy: AllocationPolicy,
    new_line_ids: Collection[str] = (),
) -> AllocationResult:
    """Give available stock to waiting lines in priority order (partial fills allowed).

    Lines already holding units keep them; cancelled and shipped lines are ignored. The
    walk follows one priority order over all given lines, so a ship-complete order
    spanning SKUs is judged once, when its first waiting line comes up: all its waiting
    lines are filled in full right then, or the whole order is skipped without blocking
    later lines.

    `new_line_ids` names lines just placed: each of them still waiting afterwards gets a
    `line_backordered` event, and none gets `backorder_resolved` for its first fill.
    """
    pool = lines if isinstance(lines, list) else list(lines)
    index = StockIndex(stocks, policy)
    new_ids = new_line_ids if isinstance(new_line_ids, (set, frozenset, dict)) else set(new_line_ids)
    result = AllocationResult()
    waiting = [ln for ln in pool if not ln.cancelled and ln.qty_allocated < ln.qty]
    if not waiting:
        return result
    key = sort_key_for(pool, policy)
    sc_orders = _ship_complete_orders(pool)
    groups: dict[str, list[Line]] = {}
    if sc_orders:
        for ln in waiting:
            if ln.order_id in sc_orders:
                groups.setdefault(ln.order_id, []).append(ln)
        for group in groups.values():
            group.sort(key=key)
    for batch in _independent_batches(waiting, groups):
        batch.sort(key=key)
        _walk(batch, groups, index, policy.allow_split, new_ids, result)
    return result


def _independent_batches(waiting: list[Line], groups: dict[str, list[Line]]) -> list[list[Line]]:
    """Split waiting lines into sets sharing no stock and no ship-complete order.

    Walking each set on its own in priority order decides exactly what one global walk
    would, but sorts many short lists instead of one huge one and keeps a SKU's stock
    rows hot while its lines are served. Batches come in order of their smallest SKU.
    """
    parent: dict[str, str] = {}

    def find(sku: str) -> str:
        while (up := parent.get(sku, sku)) != sku:
            parent[sku] = parent.get(up, up)  # path halving
            sku = up
        return sku

    for group in groups.values():
        skus = sorted({ln.sku for ln in group})
        for other in skus[1:]:
            ra, rb = find(skus[0]), find(other)
            if ra != rb:
                # The smaller SKU becomes the root, so batch identity never depends on input order.
                lo, hi = (ra, rb) if ra < rb else (rb, ra)
                parent[hi] = lo
    buckets: dict[str, list[Line]] = {}
    if parent:
        for ln in waiting:
            buckets.setdefault(find(ln.sku), []).append(ln)
    else:
        for ln in waiting:
            bucket = buckets.get(ln.sku)
            if bucket is None:
                buckets[ln.sku] = [ln]
            else:
                bucket.append(ln)
    return [buckets[root] for root in sorted(buckets)]


def _walk(
    batch: list[Line],
    groups: dict[str, list[Line]],
    index: StockIndex,
    allow_split: bool,
    new_ids: Collection[str],
    result: AllocationResult,
) -> None:
    # Skip SKUs once they run dry: most lines in a big backlog find nothing.
    dry: set[str] = set()
    judged: set[str] = set()
    for ln in batch:
        if groups and ln.order_id in groups:
            if ln.order_id in judged:
                continue
            judged.add(ln.order_id)
            plans = _plan_order(groups[ln.order_id], index, allow_split)
            if plans is not None:
                for gl, plan in plans:
                    _apply(gl, plan, result, new_ids)
            continue
        if ln.sku in dry:
            continue
        prefs = index.preferred(ln.sku, ln.region)
        plan = _plan(ln, ln.qty - ln.qty_allocated, prefs, allow_split, None)
        if plan:
            _apply(ln, plan, result, new_ids)
        elif all(s.on_hand <= s.allocated for s in prefs):
            dry.add(ln.sku)
    if new_ids:
        for ln in batch:
            if ln.line_id in new_ids and ln.qty > ln.qty_allocated:
                result.events.append(
                    DomainEvent(
                        "line_backordered",
                        {
                            "line_id": ln.line_id,
                            "order_id": ln.order_id,
                            "sku": ln.sku,
                            "qty": ln.qty,
                            "waiting": ln.qty - ln.qty_allocated,
                            "value": (ln.qty - ln.qty_allocated) * ln.unit_price,
                        },
                    )
                )


def _take_back(
    line: Line, amounts: dict[str, int], index: StockIndex, result: AllocationResult
) -> dict[str, int]:
    """Return active units from `line` to stock; returns {warehouse: units} actually released."""
    released: dict[str, int] = {}
    for wh, q in amounts.items():
        held = line.allocations.get(wh, 0)
        q = min(q, held)
        if q <= 0:
            continue
        stock = index.get(line.sku, wh)
        stock.allocated -= q
        if held == q:
            del line.allocations[wh]
        else:
            line.allocations[wh] = held - q
        line.qty_allocated -= q
        released[wh] = q
        result.moves.append(Move("release", line.line_id, line.order_id, line.sku, wh, q))
        result.changed_stocks[(stock.sku, wh)] = stock
    if released:
        result.changed_lines[line.line_id] = line
    return released


def _release(line: Line, amounts: dict[str, int], index: StockIndex, result: AllocationResult) -> None:
    previous = line.status
    released = _take_back(line, amounts, index, result)
    if not released:
        return
    line.status = line_status(line)
    result.events.append(
        DomainEvent(
            "allocation_released",
            {
                "line_id": line.line_id,
                "order_id": line.order_id,
                "sku": line.sku,
                "qty": sum(released.values()),
                "warehouses": released,
                "qty_allocated": line.qty_allocated,
                "previous_status": previous,
                "status": line.status,
                "reason": "stock_adjusted_down",
            },
        )
    )


def release_excess(
    lines: Iterable[Line], stocks: Iterable[Stock], policy: AllocationPolicy
) -> AllocationResult:
    """Where a stock holds more allocated than on hand, take units back from the
    lowest-priority holders until allocated <= on_hand.

    A ship-complete order that loses any unit loses all its active units (all-or-nothing).
    Call allocate() afterwards so released demand can find stock elsewhere.
    """
    pool = lines if isinstance(lines, list) else list(lines)
    stock_list = list(stocks)
    result = AllocationResult()
    over = sorted((s for s in stock_list if s.allocated > s.on_hand), key=lambda s: (s.sku, s.warehouse_id))
    if not over:
        return result
    index = StockIndex(stock_list, policy)
    key = sort_key_for(pool, policy)
    over_keys = {(s.sku, s.warehouse_id) for s in over}
    over_skus = {s.sku for s in over}
    sc_orders = _ship_complete_orders(pool)
    holders: dict[tuple[str, str], list[Line]] = {}
    order_lines: dict[str, list[Line]] = {}
    for ln in pool:
        if ln.cancelled:
            continue
        if sc_orders and ln.order_id in sc_orders:
            order_lines.setdefault(ln.order_id, []).append(ln)
        if ln.sku in over_skus:
            for wh in ln.allocations:
                if (ln.sku, wh) in over_keys:
                    holders.setdefault((ln.sku, wh), []).append(ln)
    for group in order_lines.values():
        group.sort(key=key)

    for stock in over:
        wh = stock.warehouse_id
        for ln in sorted(holders.get((stock.sku, wh), ()), key=key, reverse=True):
            excess = stock.allocated - stock.on_hand
            if excess <= 0:
                break
            held = ln.allocations.get(wh, 0)
            if held <= 0:
                continue  # already emptied as part of a ship-complete order
            if ln.order_id in sc_orders:
                for ol in order_lines[ln.order_id]:
                    _release(ol, dict(ol.allocations), index, result)
            else:
                _release(ln, {wh: min(held, excess)}, index, result)
    return result


def cancel(lines: Iterable[Line], stocks: Iterable[Stock], line_ids: Collection[str]) -> AllocationResult:
    """Cancel the named lines, returning their active units to stock.

    Shipped units stay shipped; a fully shipped or already cancelled line is left alone.
    Emits one `line_cancelled` per line (no separate allocation_released). Call allocate()
    afterwards so the freed units go to the next waiting lines.
    """
    ids = line_ids if isinstance(line_ids, (set, frozenset, dict)) else set(line_ids)
    index = StockIndex(stocks)
    result = AllocationResult()
    for ln in lines:
        if ln.line_id not in ids or ln.cancelled or ln.qty_shipped >= ln.qty:
            continue
        previous = ln.status
        released = _take_back(ln, dict(ln.allocations), index, result)
        ln.cancelled = True
        ln.status = CANCELLED
        result.changed_lines[ln.line_id] = ln
        result.events.append(
            DomainEvent(
                "line_cancelled",
                {
                    "line_id": ln.line_id,
                    "order_id": ln.order_id,
                    "sku": ln.sku,
                    "qty": ln.qty,
                    "qty_shipped": ln.qty_shipped,
                    "released": released,
                    "previous_status": previous,
                },
            )
        )
    return result


def ship(lines: Iterable[Line], stocks: Iterable[Stock], line_ids: Collection[str]) -> AllocationResult:
    """Ship the active allocated units of the named lines.

    Stock.on_hand and Stock.allocated both drop by the shipped units; the line's
    allocations are cleared, so a second call ships nothing. No Move is emitted (moves
    are allocate/release only); the `line_shipped` event names the warehouses.
    """
    ids = line_ids if isinstance(line_ids, (set, frozenset, dict)) else set(line_ids)
    index = StockIndex(stocks)
    result = AllocationResult()
    for ln in lines:
        if ln.line_id not in ids or ln.cancelled or not ln.allocations:
            continue
        previous = ln.status
        shipped = dict(ln.allocations)
        for wh, q in shipped.items():
            stock = index.get(ln.sku, wh)
            stock.on_hand -= q
            stock.allocated -= q
            ln.qty_shipped += q
            result.changed_stocks[(stock.sku, wh)] = stock
        ln.allocations.clear()
        ln.status = line_status(ln)
        result.changed_lines[ln.line_id] = ln
        result.events.append(
            DomainEvent(
                "line_shipped",
                {
                    "line_id": ln.line_id,
                    "order_id": ln.order_id,
                    "sku": ln.sku,
                    "qty": sum(shipped.values()),
                    "qty_shipped": ln.qty_shipped,
                    "warehouses": shipped,
                    "previous_status": previous,
                    "status": ln.status,
                },
            )
        )
    return result
