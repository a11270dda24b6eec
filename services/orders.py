"""Handlers for order.placed, order.cancelled and shipment.updated."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update

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

# Built once: an order costs a dozen statements, and building each anew (and its cache key) cost more
# client CPU than PostgreSQL spent running it.
_o, _l, _c, _p = t.orders, t.order_lines, t.customers, t.products
_PLACED_OR_UNKNOWN = select(
    select(_o.c.order_id).where(_o.c.order_id == bindparam("order_id")).exists(),
    select(_c.c.customer_id).where(_c.c.customer_id == bindparam("customer_id")).exists(),
)
# SQLite takes no row locks, so whether every SKU exists rides along (PostgreSQL learns it from the lock).
_PLACED_OR_UNKNOWN_SKUS = _PLACED_OR_UNKNOWN.add_columns(
    select(func.count()).select_from(_p).where(_p.c.sku.in_(bindparam("skus", expanding=True))).scalar_subquery())
_INSERT_ORDER = insert(_o)
_INSERT_LINES = insert(_l).returning(_l.c.id)
_STAMP_BACKORDERED = update(_l).where(
    _l.c.order_id == bindparam("b_order_id"), _l.c.status.in_(io.WAITING_STATUSES),
).values(backordered_at=bindparam("b_at"))
_ORDER_KNOWN = select(_o.c.order_id).where(_o.c.order_id == bindparam("order_id"))
_ORDER_LINES = select(_l.c.id, _l.c.line_id, _l.c.sku, _l.c.status).where(_l.c.order_id == bindparam("order_id"))
_LEFT_OPEN = select(_l.c.id).where(_l.c.order_id == bindparam("order_id"),
                                   _l.c.status.notin_(("cancelled", "substituted"))).limit(1)
_CANCEL_ORDER = update(_o).where(_o.c.order_id == bindparam("b_order_id")).values(status="cancelled")
# PostgreSQL: the order and all its lines in one statement, whatever their number (the order's insert is a
# data-modifying CTE, the lines come from arrays; their foreign key is checked at the statement's end).
# Text, so that it is compiled once: SQLAlchemy does not cache a multi-row VALUES insert.
_PLACE = text(
    "WITH placed AS (INSERT INTO orders (order_id, customer_id, placed_at, promised_date, rush, ship_complete, "
    "channel, source, status) VALUES (:order_id, :customer_id, :placed_at, :promised_date, :rush, :ship_complete, "
    ":channel, :source, :status)) "
    "INSERT INTO order_lines (order_id, line_id, sku, qty, unit_price, qty_allocated, qty_shipped, status, "
    "backordered_at) "
    "SELECT CAST(:order_id AS VARCHAR), line_id, sku, qty, unit_price, 0, 0, 'backordered', "
    "CAST(NULL AS TIMESTAMP WITH TIME ZONE) "
    "FROM unnest(CAST(:line_ids AS VARCHAR[]), CAST(:skus AS VARCHAR[]), CAST(:qtys AS INTEGER[]), "
    "CAST(:unit_prices AS NUMERIC[])) AS given(line_id, sku, qty, unit_price) "
    "RETURNING id"
).bindparams(*(bindparam(c, type_=_o.c[c].type) for c in (
    "order_id", "customer_id", "placed_at", "promised_date", "rush", "ship_complete", "channel", "source", "status")))


def order_placed(conn: Connection, ctx: Context, data: dict[str, Any], at: datetime, cause: str) -> None:
    order_id = data["order_id"]
    params = {"order_id": order_id, "customer_id": data["customer_id"]}
    hint = None if conn.dialect.name == "postgresql" else _sku_hint(data)
    if hint is None:
        placed, customer_known = conn.execute(_PLACED_OR_UNKNOWN, params).one()
        known_count = None
    else:
        placed, customer_known, known_count = conn.execute(_PLACED_OR_UNKNOWN_SKUS, {**params, "skus": hint}).one()
    if placed:
        raise Ignore(f"order {order_id} was already placed")
    value = sum(Decimal(str(ln.get("unit_price", 0))) * ln["qty"] for ln in data["lines"])
    if not customer_known:
        raise Park(f"unknown customer {data['customer_id']}", "customer", data["customer_id"], value)
    skus = sorted({ln["sku"] for ln in data["lines"]})
    # Lock the SKUs before inserting lines: the lines' foreign keys take KEY SHARE locks on
    # the product rows, and asking for FOR UPDATE on them afterwards deadlocks with another
    # process placing an order for the same SKU (PostgreSQL). SQLite has nothing to lock (one
    # writer at a time): when the first query found every SKU, there is nothing left to ask.
    all_known = known_count is not None and known_count == len(skus)
    known = set(skus) if all_known else io.lock_skus(conn, skus, report=True)
    missing = [s for s in skus if s not in known]
    if missing:
        raise Park(f"unknown SKU {', '.join(missing)}", "product", missing[0], value)
    placed_at = datetime.fromisoformat(data["placed_at"]) if data.get("placed_at") else at
    order = {
        "order_id": order_id, "customer_id": data["customer_id"], "placed_at": placed_at,
        "promised_date": date.fromisoformat(data["promised_date"]) if data.get("promised_date") else None,
        "rush": bool(data.get("rush")), "ship_complete": bool(data.get("ship_complete")),
        "channel": data.get("channel"), "source": cause.split(":", 1)[0], "status": "open",
    }
    lines = [{"line_id": ln["line_id"], "sku": ln["sku"], "qty": ln["qty"],
              "unit_price": Decimal(str(ln.get("unit_price", 0)))} for ln in data["lines"]]
    if conn.dialect.name == "postgresql" and lines:
        arrays = {f"{c}s": [ln[c] for ln in lines] for c in ("line_id", "sku", "qty", "unit_price")}
        new_pks = conn.execute(_PLACE, {**order, **arrays}).scalars().all()
    else:
        conn.execute(_INSERT_ORDER, order)
        new_pks = conn.execute(_INSERT_LINES, [
            {"order_id": order_id, **ln, "qty_allocated": 0, "qty_shipped": 0, "status": "backordered",
             "backordered_at": None} for ln in lines]).scalars().all()
    events = run_pass(conn, ctx, skus, cause, new_line_pks=new_pks)
    # A line still waiting after its first pass is a backorder from the moment it was placed. The pass
    # names each such line (line_backordered): when it names none, every line was filled and there is
    # nothing to stamp (a line of no units would wait without being named, so it is stamped anyway).
    if any(e.type == "line_backordered" for e in events) or not all(
            isinstance(ln["qty"], int) and ln["qty"] > 0 for ln in lines):
        conn.execute(_STAMP_BACKORDERED, {"b_order_id": order_id, "b_at": placed_at})
    release_waiting_on(conn, "order", order_id, ctx.now())


def _sku_hint(data: dict[str, Any]) -> list[str] | None:
    """The order's SKUs to count in its first query, or None when the lines are not plain enough to ask
    about yet (the handler then fails where it always did, after the duplicate and customer checks)."""
    lines = data.get("lines")
    if not isinstance(lines, list) or not all(isinstance(ln, dict) and isinstance(ln.get("sku"), str)
                                              for ln in lines):
        return None
    return sorted({ln["sku"] for ln in lines})


def _order_lines(conn: Connection, order_id: str, line_ids: list[str] | None) -> list[Any]:
    if not conn.execute(_ORDER_KNOWN, {"order_id": order_id}).first():
        raise Park(f"unknown order {order_id}", "order", order_id)
    rows = conn.execute(_ORDER_LINES, {"order_id": order_id}).all()
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
    remaining = conn.execute(_LEFT_OPEN, {"order_id": data["order_id"]}).first()
    if remaining is None:
        conn.execute(_CANCEL_ORDER, {"b_order_id": data["order_id"]})


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
