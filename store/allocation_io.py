"""Set-based loads and writes of what the allocation domain works on.

The domain sees a line's key as its zero-padded surrogate id (`line_key`), so FIFO tie-breaks
follow the order in which lines were listed, and the key maps back to the row without a lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, select, update

from allocation.model import DomainEvent, Line, Stock
from store import tables as t
from store.db import txn_state

OPEN_STATUSES = ("backordered", "partially_allocated", "allocated")
WAITING_STATUSES = ("backordered", "partially_allocated")


def line_key(pk: int) -> str:
    return f"{pk:012d}"


def line_pk(key: str) -> int:
    return int(key)


# A line as loaded: (qty_allocated, qty_shipped, status, eta, eta_reason, active allocations).
# A plain tuple: a pass snapshots every line it loads, thousands at a time.
LineSnapshot = tuple[int, int, str, date | None, str | None, dict[str, int]]


@dataclass(slots=True)
class Loaded:
    """What one allocation pass needs, plus a snapshot to find what it changed."""

    lines: list[Line]
    stocks: list[Stock]
    public_ids: dict[str, str]  # line key -> the source's line_id
    before: dict[str, LineSnapshot]
    stock_before: dict[tuple[str, str], tuple[int, int]]
    alloc_rows: dict[tuple[str, str], int]  # (line key, warehouse) -> active allocation row id
    regions: dict[str, str]  # warehouse -> region, for the warehouses holding these SKUs


# Built once: a pass runs these in every unit of work, and building each statement anew (and its cache
# key) cost more client CPU than the database spent running it. IN lists are expanding parameters.
_p = t.products
_KNOWN_SKUS = select(_p.c.sku).where(_p.c.sku.in_(bindparam("skus", expanding=True)))
_LOCK_SKUS = {
    nowait: _KNOWN_SKUS.order_by(_p.c.sku).with_for_update(nowait=nowait) for nowait in (False, True)
}


def lock_skus(conn: Connection, skus: Iterable[str], *, nowait: bool = False, report: bool = False) -> set[str]:
    """Serialize allocation per SKU across processes: lock the product rows, in a fixed order.

    nowait=True is for locks taken while already holding others (out of order, so waiting
    could deadlock): PostgreSQL raises LockNotAvailable at once and the caller's unit of
    work is rolled back and retried (services.inbox.apply_next). With report=True it returns
    which of the SKUs exist (on SQLite too); otherwise an empty set.
    """
    wanted = set(skus)
    if conn.dialect.name != "postgresql":
        # SQLite runs one writer at a time (BEGIN IMMEDIATE): nothing to lock.
        if not report:
            return set()
        return set(conn.execute(_KNOWN_SKUS, {"skus": sorted(wanted)}).scalars())
    # Row locks last until commit: remember them for the transaction, so a handler and the
    # allocation pass it calls do not lock the same rows twice.
    held: set[str] = txn_state(conn).setdefault("locked_skus", set())
    todo = sorted(wanted - held)
    if todo:
        held.update(conn.execute(_LOCK_SKUS[nowait], {"skus": todo}).scalars())
    return wanted & held if report else set()


def _line_query(where: Any) -> Any:
    l, o, c, a = t.order_lines, t.orders, t.customers, t.allocations
    # Active allocations ride along (one row per line and warehouse held), so a pass reads its
    # lines in one statement, without a second query naming a thousand line ids.
    return (
        select(
            l.c.id, l.c.order_id, l.c.sku, l.c.qty, o.c.placed_at, l.c.qty_allocated, l.c.qty_shipped,
            o.c.promised_date, c.c.tier, o.c.rush, o.c.ship_complete, c.c.region, l.c.unit_price,
            l.c.status, l.c.eta, l.c.eta_reason, l.c.line_id, a.c.id, a.c.warehouse_id, a.c.qty,
        )
        .join(o, o.c.order_id == l.c.order_id)
        .join(c, c.c.customer_id == o.c.customer_id)
        .outerjoin(a, (a.c.line_pk == l.c.id) & (a.c.status == "allocated"))
        .where(where)
        # In a fixed order: the pass's events (and the line lists of the notices made from them) follow the
        # lines' order, which would otherwise be whatever plan the database picks, and differ between runs.
        .order_by(l.c.id, a.c.id)
    )


_l, _a, _s, _w, _o = t.order_lines, t.allocations, t.stock, t.warehouses, t.orders
_OPEN_LINES = _line_query(and_(_l.c.sku.in_(bindparam("skus", expanding=True)),
                               _l.c.status.in_(bindparam("statuses", expanding=True))))
_LINES_BY_PK = _line_query(_l.c.id.in_(bindparam("pks", expanding=True)))
_STOCK = (
    select(_s.c.sku, _s.c.warehouse_id, _s.c.on_hand, _s.c.allocated, _w.c.region)
    .join(_w, _w.c.warehouse_id == _s.c.warehouse_id)
    .where(_s.c.sku.in_(bindparam("skus", expanding=True))).order_by(_s.c.sku, _s.c.warehouse_id)
)
_SKUS_OF_ORDERS = select(_l.c.sku).where(
    _l.c.order_id.in_(bindparam("order_ids", expanding=True)), _l.c.status.in_(OPEN_STATUSES)).distinct()
_WAITING_SHIP_COMPLETE = (
    select(_l.c.order_id).join(_o, _o.c.order_id == _l.c.order_id)
    .where(_l.c.sku.in_(bindparam("skus", expanding=True)), _l.c.status.in_(WAITING_STATUSES), _o.c.ship_complete)
    .distinct()
)
_UPDATE_LINES = update(_l).where(_l.c.id == bindparam("b_id")).values(
    qty_allocated=bindparam("qty_allocated"), qty_shipped=bindparam("qty_shipped"),
    status=bindparam("status"), eta=bindparam("eta"), eta_reason=bindparam("eta_reason"),
)
_INSERT_ALLOCATIONS = insert(_a)
_UPDATE_ALLOCATIONS = update(_a).where(_a.c.id == bindparam("b_id")).values(
    qty=bindparam("qty"), status=bindparam("status"), updated_at=bindparam("updated_at"))
_UPDATE_STOCK = update(_s).where(_s.c.sku == bindparam("b_sku"), _s.c.warehouse_id == bindparam("b_wh")).values(
    on_hand=bindparam("on_hand"), allocated=bindparam("allocated"))
_INSERT_EVENTS = insert(t.domain_events)
_INSERT_AUDIT = insert(t.audit_log)


def load_open(conn: Connection, skus: Iterable[str], extra_line_pks: Sequence[int] = (),
              holding: bool = True) -> Loaded:
    """Open lines and all stock of `skus` (plus any lines named by pk, e.g. ones being cancelled).

    With holding=False, fully allocated lines are left out: a pass that only gives stock out
    never touches them, and a busy SKU can have many more of them than waiting lines.
    """
    skus = sorted(set(skus))
    statuses = list(OPEN_STATUSES if holding else WAITING_STATUSES)
    rows = conn.execute(_OPEN_LINES, {"skus": skus, "statuses": statuses}).tuples().all()
    if extra_line_pks:
        rows += conn.execute(_LINES_BY_PK, {"pks": list(extra_line_pks)}).tuples().all()
        skus = sorted(set(skus) | {r[2] for r in rows})
    lines: list[Line] = []
    by_key: dict[str, Line] = {}
    public: dict[str, str] = {}
    alloc_rows: dict[tuple[str, str], int] = {}
    for (pk, order_id, sku, qty, placed_at, qty_allocated, qty_shipped, promised, tier, rush, whole, region,
         price, status, eta, eta_reason, public_id, alloc_id, alloc_wh, alloc_qty) in rows:
        key = line_key(pk)
        line = by_key.get(key)
        if line is None:
            line = Line(key, order_id, sku, qty, placed_at, qty_allocated, qty_shipped, promised, tier, rush,
                        whole, region, float(price), status == "cancelled", {}, status, eta, eta_reason)
            lines.append(line)
            by_key[key] = line
            public[key] = public_id
        if alloc_id is not None and (key, alloc_wh) not in alloc_rows:
            line.allocations[alloc_wh] = line.allocations.get(alloc_wh, 0) + alloc_qty
            alloc_rows[(key, alloc_wh)] = alloc_id
    stocks: list[Stock] = []
    regions: dict[str, str] = {}
    # The regions of the warehouses holding these SKUs are all a pass needs to rank warehouses.
    for sku, wh, on_hand, allocated, region in conn.execute(_STOCK, {"skus": skus}).tuples():
        stocks.append(Stock(sku, wh, on_hand, allocated))
        if region:
            regions[wh] = region
    before = {
        ln.line_id: (ln.qty_allocated, ln.qty_shipped, ln.status, ln.eta, ln.eta_reason,
                     dict(ln.allocations) if ln.allocations else {})
        for ln in lines
    }
    stock_before = {(st.sku, st.warehouse_id): (st.on_hand, st.allocated) for st in stocks}
    return Loaded(lines, stocks, public, before, stock_before, alloc_rows, regions)


def skus_of_orders(conn: Connection, order_ids: Iterable[str]) -> set[str]:
    return set(conn.execute(_SKUS_OF_ORDERS, {"order_ids": sorted(set(order_ids))}).scalars())


def waiting_ship_complete_orders(conn: Connection, skus: Iterable[str]) -> set[str]:
    """Ship-complete orders with a line of `skus` still waiting for units."""
    return set(conn.execute(_WAITING_SHIP_COMPLETE, {"skus": sorted(set(skus))}).scalars())


def warehouse_regions(conn: Connection) -> dict[str, str]:
    w = t.warehouses
    return {r.warehouse_id: r.region for r in conn.execute(select(w.c.warehouse_id, w.c.region)) if r.region}


def save(conn: Connection, loaded: Loaded, now: datetime) -> list[dict[str, Any]]:
    """Write back every line, stock and allocation the pass changed; return audit rows for the lines."""
    line_updates: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    alloc_inserts: list[dict[str, Any]] = []
    alloc_updates: list[dict[str, Any]] = []
    for ln in loaded.lines:
        b = loaded.before[ln.line_id]
        b_qa, b_qs, b_status, b_eta, b_reason, b_allocs = b
        allocs_changed = ln.allocations != b_allocs
        if not allocs_changed and (ln.qty_allocated, ln.qty_shipped, ln.status, ln.eta, ln.eta_reason) == b[:5]:
            continue
        pk = line_pk(ln.line_id)
        line_updates.append({
            "b_id": pk, "qty_allocated": ln.qty_allocated, "qty_shipped": ln.qty_shipped,
            "status": ln.status, "eta": ln.eta, "eta_reason": ln.eta_reason,
        })
        if allocs_changed:
            for wh in b_allocs.keys() | ln.allocations.keys():
                new_qty = ln.allocations.get(wh, 0)
                row_id = loaded.alloc_rows.get((ln.line_id, wh))
                if row_id is None:
                    if new_qty:
                        alloc_inserts.append({"line_pk": pk, "sku": ln.sku, "warehouse_id": wh, "qty": new_qty,
                                              "status": "allocated", "created_at": now, "updated_at": now})
                elif new_qty != b_allocs.get(wh, 0):
                    if new_qty == 0 and ln.qty_shipped > b_qs:
                        # Shipping empties the active row: it keeps its quantity, now as shipped units.
                        alloc_updates.append({"b_id": row_id, "qty": b_allocs[wh], "status": "shipped",
                                              "updated_at": now})
                    else:
                        alloc_updates.append({"b_id": row_id, "qty": new_qty, "updated_at": now,
                                              "status": "allocated" if new_qty else "released"})
        moved = (ln.qty_allocated, ln.qty_shipped, ln.status) != (b_qa, b_qs, b_status)
        if moved or ln.eta != b_eta:
            audit.append({
                "entity": "order_line", "entity_id": f"{ln.order_id}/{loaded.public_ids[ln.line_id]}",
                "action": ln.status if moved else "eta_changed",
                "before": {"status": b_status, "qty_allocated": b_qa, "qty_shipped": b_qs,
                           "allocations": b_allocs, "eta": b_eta, "eta_reason": b_reason},
                "after": {"status": ln.status, "qty_allocated": ln.qty_allocated, "qty_shipped": ln.qty_shipped,
                          "allocations": dict(ln.allocations), "eta": ln.eta, "eta_reason": ln.eta_reason},
            })
    if line_updates:
        conn.execute(_UPDATE_LINES, line_updates)
    if alloc_inserts:
        conn.execute(_INSERT_ALLOCATIONS, alloc_inserts)
    if alloc_updates:
        conn.execute(_UPDATE_ALLOCATIONS, alloc_updates)
    stock_updates = [
        {"b_sku": st.sku, "b_wh": st.warehouse_id, "on_hand": st.on_hand, "allocated": st.allocated}
        for st in loaded.stocks
        if loaded.stock_before.get((st.sku, st.warehouse_id)) != (st.on_hand, st.allocated)
    ]
    if stock_updates:
        conn.execute(_UPDATE_STOCK, stock_updates)
    return audit


def write_events(conn: Connection, events: Sequence[DomainEvent], public_ids: dict[str, str], cause: str | None,
                 now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """Domain events go out with the public line id; the store's key rides along as line_pk.

    Returns (type, data) as written, for the notification planner in the same transaction.
    """
    if not events:
        return []
    rows = []
    for ev in events:
        data = dict(ev.data)
        key = data.get("line_id")
        if isinstance(key, str) and key in public_ids:
            data["line_pk"] = line_pk(key)
            data["line_id"] = public_ids[key]
        rows.append({"type": ev.type, "data": _jsonable(data), "created_at": now, "cause": cause})
    conn.execute(_INSERT_EVENTS, rows)
    return [(r["type"], r["data"]) for r in rows]


def write_audit(conn: Connection, rows: Sequence[dict[str, Any]], actor: str, reason: str | None,
                now: datetime) -> None:
    if rows:
        conn.execute(_INSERT_AUDIT, [
            {"at": now, "actor": actor, "reason": reason, **{k: _jsonable(v) for k, v in r.items()}} for r in rows
        ])


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [_jsonable(x) for x in v]
    if isinstance(v, date | datetime):
        return v.isoformat()
    return v
