"""Handlers for order.placed, order.cancelled and shipment.updated."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select, update

from allocation.engine import cancel, ship
from allocation.policy import AllocationPolicy
from allocation.result import AllocationResult
from services.allocating import run_pass
from services.context import Context
from services.deadletters import release_waiting_on
from services.outcomes import Ignore, Park
from store import allocation_io as io
from store import tables as t

SHIPPING_STATUSES = {"shipped", "in_transit", "delivered"}


def order_placed(conn: Connection, ctx: Context, data: dict[str, Any], at: datetime, cause: str) -> None:
    o, l = t.orders, t.order_lines
    order_id = data["order_id"]
    c = t.customers
    placed, customer_known = conn.execute(select(
        select(o.c.order_id).where(o.c.order_id == order_id).exists(),
        select(c.c.customer_id).where(c.c.customer_id == data["customer_id"]).exists(),
    )).one()
    if placed:
        raise Ignore(f"order {order_id} was already placed")
    value = sum(Decimal(str(ln.get("unit_price", 0))) * ln["qty"] for ln in data["lines"])
    if not customer_known:
        raise Park(f"unknown customer {data['customer_id']}", "customer", data["customer_id"], value)
    skus = sorted({ln["sku"] for ln in data["lines"]})
    # Lock the SKUs before inserting lines: the lines' foreign keys take KEY SHARE locks on
    # the product rows, and asking for FOR UPDATE on them afterwards deadlocks with another
    # process placing an order for the same SKU (PostgreSQL).
    known = io.lock_skus(conn, skus, report=True)
    missing = [s for s in skus if s not in known]
    if missing:
        raise Park(f"unknown SKU {', '.join(missing)}", "product", missing[0], value)
    placed_at = datetime.fromisoformat(data["placed_at"]) if data.get("placed_at") else at
    conn.execute(insert(o).values(
        order_id=order_id, customer_id=data["customer_id"], placed_at=placed_at,
        promised_date=date.fromisoformat(data["promised_date"]) if data.get("promised_date") else None,
        rush=bool(data.get("rush")), ship_complete=bool(data.get("ship_complete")),
        channel=data.get("channel"), source=cause.split(":", 1)[0], status="open",
    ))
    new_pks = conn.execute(insert(l).returning(l.c.id), [
        {"order_id": order_id, "line_id": ln["line_id"], "sku": ln["sku"], "qty": ln["qty"],
         "unit_price": Decimal(str(ln.get("unit_price", 0))), "qty_allocated": 0, "qty_shipped": 0,
         "status": "backordered", "backordered_at": None}
        for ln in data["lines"]
    ]).scalars().all()
    run_pass(conn, ctx, skus, cause, new_line_pks=new_pks)
    # A line still waiting after its first pass is a backorder from the moment it was placed.
    conn.execute(update(l).where(l.c.order_id == order_id, l.c.status.in_(("backordered", "partially_allocated")))
                 .values(backordered_at=placed_at))
    release_waiting_on(conn, "order", order_id, ctx.now())


def _order_lines(conn: Connection, order_id: str, line_ids: list[str] | None) -> list[Any]:
    l = t.order_lines
    if not conn.execute(select(t.orders.c.order_id).where(t.orders.c.order_id == order_id)).first():
        raise Park(f"unknown order {order_id}", "order", order_id)
    q = select(l.c.id, l.c.line_id, l.c.sku, l.c.status).where(l.c.order_id == order_id)
    rows = conn.execute(q).all()
    if line_ids is not None:
        unknown = sorted(set(line_ids) - {r.line_id for r in rows})
        if unknown:
            raise Ignore(f"order {order_id} has no line {', '.join(unknown)}")
        rows = [r for r in rows if r.line_id in set(line_ids)]
    return rows


def order_cancelled(conn: Connection, ctx: Context, data: dict[str, Any], at: datetime, cause: str) -> None:
    rows = _order_lines(conn, data["order_id"], data.get("line_ids"))
    open_rows = [r for r in rows if r.status in io.OPEN_STATUSES]
    if not open_rows:
        raise Ignore(f"order {data['order_id']}: nothing left to cancel")
    keys = {io.line_key(r.id) for r in open_rows}

    def prepare(loaded: io.Loaded, _policy: AllocationPolicy) -> AllocationResult:
        return cancel(loaded.lines, loaded.stocks, keys)

    run_pass(conn, ctx, {r.sku for r in open_rows}, cause, prepare=prepare,
             extra_line_pks=[r.id for r in open_rows], restock=True)
    o = t.orders
    remaining = conn.execute(select(t.order_lines.c.id).where(
        t.order_lines.c.order_id == data["order_id"],
        t.order_lines.c.status.notin_(("cancelled", "substituted")))).first()
    if remaining is None:
        conn.execute(update(o).where(o.c.order_id == data["order_id"]).values(status="cancelled"))


def shipment_updated(conn: Connection, ctx: Context, data: dict[str, Any], at: datetime, cause: str) -> None:
    rows = _order_lines(conn, data["order_id"], data.get("line_ids"))
    status = data.get("status", "shipped")
    if status not in SHIPPING_STATUSES:
        raise Ignore(f"shipment status {status}: nothing moves until it ships")
    to_ship = [r for r in rows if r.status in io.OPEN_STATUSES]
    if not to_ship:
        raise Ignore(f"order {data['order_id']}: nothing left to ship")
    keys = {io.line_key(r.id) for r in to_ship}
    tracking = {"carrier": data.get("carrier"), "tracking": data.get("tracking"), "shipment_status": status}

    def prepare(loaded: io.Loaded, _policy: AllocationPolicy) -> AllocationResult:
        result = ship(loaded.lines, loaded.stocks, keys)
        for ev in result.events:
            ev.data.update(tracking)
        return result

    run_pass(conn, ctx, {r.sku for r in to_ship}, cause, prepare=prepare, extra_line_pks=[r.id for r in to_ship])
