"""Handlers for inventory.received, inventory.adjusted and po.updated."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, text, update

from allocation.engine import release_excess
from allocation.policy import AllocationPolicy
from allocation.result import AllocationResult
from services.allocating import run_pass
from services.context import Context
from services.outcomes import Ignore, Park
from services.tasks import open_task
from store import allocation_io as io
from store import tables as t
from store.upsert import insert_ignore

_s, _w, _p, _pl = t.stock, t.warehouses, t.products, t.po_lines
# Built once: a receipt is a dozen statements, and building each anew cost more CPU than running it.
_KNOWN = select(select(_w.c.warehouse_id).where(_w.c.warehouse_id == bindparam("warehouse_id")).exists(),
                select(_p.c.sku).where(_p.c.sku == bindparam("sku")).exists())
_STOCK_ROW = select(_s.c.on_hand, _s.c.allocated, _s.c.counted_at).where(
    _s.c.sku == bindparam("sku"), _s.c.warehouse_id == bindparam("warehouse_id"))
# The stock row made if new and the units added, in one statement (PostgreSQL and SQLite 3.35+ alike):
# what it held before is what it holds now less the units.
_RECEIVE = text(
    "INSERT INTO stock (sku, warehouse_id, on_hand, allocated) VALUES (:sku, :warehouse_id, :qty, 0) "
    "ON CONFLICT (sku, warehouse_id) DO UPDATE SET on_hand = stock.on_hand + excluded.on_hand "
    "RETURNING on_hand"
).bindparams(bindparam("sku", type_=_s.c.sku.type), bindparam("warehouse_id", type_=_s.c.warehouse_id.type),
             bindparam("qty", type_=_s.c.on_hand.type)).columns(on_hand=_s.c.on_hand.type)
_PO_RECEIVED = update(_pl).where(_pl.c.po_id == bindparam("b_po_id"), _pl.c.sku == bindparam("b_sku")).values(
    received=_pl.c.received + bindparam("b_qty", type_=_pl.c.received.type))


def _check_and_lock(conn: Connection, sku: str, warehouse_id: str) -> None:
    """Check both records exist (else park) and lock the SKU."""
    warehouse_known, product_known = conn.execute(_KNOWN, {"warehouse_id": warehouse_id, "sku": sku}).one()
    if not warehouse_known:
        raise Park(f"unknown warehouse {warehouse_id}", "warehouse", warehouse_id)
    if not product_known:
        raise Park(f"unknown SKU {sku}", "product", sku)
    io.lock_skus(conn, [sku])


def _locked_stock_row(conn: Connection, sku: str, warehouse_id: str) -> Any:
    """Check both records exist (else park), lock the SKU, and return its stock row there (made if new)."""
    _check_and_lock(conn, sku, warehouse_id)
    insert_ignore(conn, _s, [{"sku": sku, "warehouse_id": warehouse_id, "on_hand": 0, "allocated": 0}],
                  ["sku", "warehouse_id"])
    return conn.execute(_STOCK_ROW, {"sku": sku, "warehouse_id": warehouse_id}).one()


def inventory_received(conn: Connection, ctx: Context, data: dict[str, Any], at: datetime, cause: str) -> None:
    sku, wh, qty = data["sku"], data["warehouse_id"], data["qty"]
    _check_and_lock(conn, sku, wh)
    on_hand_before = conn.execute(_RECEIVE, {"sku": sku, "warehouse_id": wh, "qty": qty}).scalar_one() - qty
    if data.get("po_id"):
        conn.execute(_PO_RECEIVED, {"b_po_id": data["po_id"], "b_sku": sku, "b_qty": qty})
    io.write_audit(conn, [{"entity": "stock", "entity_id": f"{sku}@{wh}", "action": "received",
                           "before": {"on_hand": on_hand_before}, "after": {"on_hand": on_hand_before + qty}}],
                   "intake", cause, ctx.now())
    run_pass(conn, ctx, [sku], cause, restock=True)


def inventory_adjusted(conn: Connection, ctx: Context, data: dict[str, Any], at: datetime, cause: str) -> None:
    sku, wh, on_hand = data["sku"], data["warehouse_id"], data["on_hand"]
    before = _locked_stock_row(conn, sku, wh)
    counted_at = before.counted_at
    if counted_at is not None and at < counted_at:
        raise Ignore(f"stale count: {sku}@{wh} was counted at {counted_at.isoformat()}, after this one")
    s = t.stock
    conn.execute(update(s).where(s.c.sku == sku, s.c.warehouse_id == wh).values(on_hand=on_hand, counted_at=at))
    io.write_audit(conn, [{"entity": "stock", "entity_id": f"{sku}@{wh}", "action": "adjusted",
                           "before": {"on_hand": before.on_hand}, "after": {"on_hand": on_hand}}],
                   "intake", cause, ctx.now())

    def prepare(loaded: io.Loaded, policy: AllocationPolicy) -> AllocationResult:
        return release_excess(loaded.lines, loaded.stocks, policy)

    run_pass(conn, ctx, [sku], cause, prepare=prepare if on_hand < before.allocated else None, restock=True)


def po_updated(conn: Connection, ctx: Context, data: dict[str, Any], at: datetime, cause: str) -> None:
    po, pl = t.purchase_orders, t.po_lines
    po_id = data["po_id"]
    existing = conn.execute(select(po.c.updated_at).where(po.c.po_id == po_id)).first()
    if existing is not None and existing.updated_at is not None:
        last = existing.updated_at
        if at < last:
            raise Ignore(f"stale update: PO {po_id} was updated at {last.isoformat()}, after this one")
    old_lines = {r.sku: r for r in conn.execute(select(pl.c.sku, pl.c.qty, pl.c.received).where(pl.c.po_id == po_id))}
    values = {"supplier_id": data["supplier_id"], "warehouse_id": data["warehouse_id"],
              "expected_at": date.fromisoformat(data["expected_at"]), "status": data.get("status") or "open",
              "updated_at": at}
    if existing is None:
        conn.execute(insert(po).values(po_id=po_id, **values))
    else:
        conn.execute(update(po).where(po.c.po_id == po_id).values(**values))
    new_lines = {ln["sku"]: ln for ln in data["lines"]}
    for sku, ln in new_lines.items():
        received = max(ln.get("received") or 0, old_lines[sku].received if sku in old_lines else 0)
        if sku in old_lines:
            conn.execute(update(pl).where(pl.c.po_id == po_id, pl.c.sku == sku)
                         .values(qty=ln["qty"], received=received))
            if old_lines[sku].qty != ln["qty"]:
                open_task(conn, ctx, "inventory_check", sku=sku, po_id=po_id,
                          title=f"PO {po_id}: expected quantity of {sku} changed "
                                f"from {old_lines[sku].qty} to {ln['qty']}",
                          detail={"po_id": po_id, "old_qty": old_lines[sku].qty, "new_qty": ln["qty"]},
                          cause=cause)
        else:
            conn.execute(insert(pl).values(po_id=po_id, sku=sku, qty=ln["qty"], received=received))
    dropped = [sku for sku in old_lines if sku not in new_lines]
    if dropped:
        conn.execute(delete(pl).where(pl.c.po_id == po_id, pl.c.sku.in_(dropped)))
    skus = set(new_lines) | set(old_lines)
    known = set(conn.execute(select(t.products.c.sku).where(t.products.c.sku.in_(sorted(skus)))).scalars())
    if known:
        run_pass(conn, ctx, known, cause)
