"""Answers from the store for the read API, the CLI and (later) the bots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from store import tables as t
from store.allocation_io import WAITING_STATUSES as WAITING


def get_order(conn: Connection, order_id: str) -> dict[str, Any] | None:
    o, l, a = t.orders, t.order_lines, t.allocations
    order = conn.execute(select(o).where(o.c.order_id == order_id)).first()
    if order is None:
        return None
    lines = conn.execute(select(l).where(l.c.order_id == order_id).order_by(l.c.id)).all()
    held: dict[int, dict[str, int]] = {}
    for r in conn.execute(
        select(a.c.line_pk, a.c.warehouse_id, func.sum(a.c.qty).label("qty"))
        .where(a.c.line_pk.in_([ln.id for ln in lines]), a.c.status.in_(("allocated", "shipped")))
        .group_by(a.c.line_pk, a.c.warehouse_id)
    ):
        held.setdefault(r.line_pk, {})[r.warehouse_id] = int(r.qty)
    return {
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "placed_at": order.placed_at.isoformat(),
        "promised_date": _iso(order.promised_date),
        "rush": order.rush,
        "ship_complete": order.ship_complete,
        "channel": order.channel,
        "status": order.status,
        "lines": [
            {
                "line_id": ln.line_id,
                "sku": ln.sku,
                "qty": ln.qty,
                "qty_allocated": ln.qty_allocated,
                "qty_shipped": ln.qty_shipped,
                "status": ln.status,
                "eta": _iso(ln.eta),
                "eta_reason": ln.eta_reason,
                "unit_price": float(ln.unit_price),
                "allocations": [{"warehouse_id": wh, "qty": q} for wh, q in sorted(held.get(ln.id, {}).items())],
            }
            for ln in lines
        ],
    }


@dataclass(frozen=True, slots=True)
class BackorderFilter:
    sku: str | None = None
    warehouse_id: str | None = None
    customer_id: str | None = None
    supplier_id: str | None = None
    limit: int = 500
    offset: int = 0


def list_backorders(conn: Connection, f: BackorderFilter, today: date) -> list[dict[str, Any]]:
    """Waiting lines, oldest first, with waiting qty, age, ETA, days late and value."""
    l, o, c, p = t.order_lines, t.orders, t.customers, t.products
    q = (
        select(l.c.order_id, l.c.line_id, l.c.sku, l.c.qty, l.c.qty_allocated, l.c.unit_price, l.c.status,
               l.c.eta, l.c.eta_reason, l.c.severity, o.c.customer_id, o.c.placed_at, o.c.promised_date,
               c.c.tier, p.c.supplier_id)
        .join(o, o.c.order_id == l.c.order_id).join(c, c.c.customer_id == o.c.customer_id)
        .join(p, p.c.sku == l.c.sku)
        .where(l.c.status.in_(WAITING))
        .order_by(o.c.placed_at, l.c.order_id, l.c.id).limit(f.limit).offset(f.offset)
    )
    if f.sku:
        q = q.where(l.c.sku == f.sku)
    if f.customer_id:
        q = q.where(o.c.customer_id == f.customer_id)
    if f.supplier_id:
        q = q.where(p.c.supplier_id == f.supplier_id)
    if f.warehouse_id:
        # Lines waiting in a warehouse: customers of its region, or lines already holding stock there.
        region = select(t.warehouses.c.region).where(t.warehouses.c.warehouse_id == f.warehouse_id)
        holding = select(t.allocations.c.line_pk).where(t.allocations.c.warehouse_id == f.warehouse_id,
                                                        t.allocations.c.status == "allocated")
        q = q.where((c.c.region == region.scalar_subquery()) | l.c.id.in_(holding))
    out = []
    for r in conn.execute(q):
        waiting = r.qty - r.qty_allocated
        out.append({
            "order_id": r.order_id, "line_id": r.line_id, "sku": r.sku, "customer_id": r.customer_id,
            "tier": r.tier, "supplier_id": r.supplier_id, "qty": r.qty, "qty_waiting": waiting,
            "status": r.status, "placed_at": r.placed_at.isoformat(), "promised_date": _iso(r.promised_date),
            "age_days": (today - r.placed_at.date()).days, "eta": _iso(r.eta), "eta_reason": r.eta_reason,
            "days_late": (r.eta - r.promised_date).days if r.eta and r.promised_date else None,
            "value": round(float(r.unit_price) * waiting, 2), "severity": r.severity,
        })
    return out


def get_sku(conn: Connection, sku: str) -> dict[str, Any] | None:
    p, s, l = t.products, t.stock, t.order_lines
    product = conn.execute(select(p).where(p.c.sku == sku)).first()
    if product is None:
        return None
    stock = [
        {"warehouse_id": r.warehouse_id, "on_hand": r.on_hand, "allocated": r.allocated,
         "available": r.on_hand - r.allocated}
        for r in conn.execute(select(s).where(s.c.sku == sku).order_by(s.c.warehouse_id))
    ]
    waiting = conn.execute(
        select(func.count(), func.coalesce(func.sum(l.c.qty - l.c.qty_allocated), 0))
        .where(l.c.sku == sku, l.c.status.in_(WAITING))
    ).one()
    po, pl = t.purchase_orders, t.po_lines
    inbound = [
        {"po_id": r.po_id, "supplier_id": r.supplier_id, "warehouse_id": r.warehouse_id,
         "expected_at": _iso(r.expected_at), "qty": r.qty, "received": r.received, "open": r.qty - r.received}
        for r in conn.execute(
            select(po.c.po_id, po.c.supplier_id, po.c.warehouse_id, po.c.expected_at, pl.c.qty, pl.c.received)
            .join(po, po.c.po_id == pl.c.po_id)
            .where(pl.c.sku == sku, po.c.status == "open", pl.c.qty > pl.c.received)
            .order_by(po.c.expected_at, po.c.po_id)
        )
    ]
    return {
        "sku": product.sku, "name": product.name, "price": float(product.price),
        "supplier_id": product.supplier_id, "lead_time_days": product.lead_time_days,
        "reorder_point": product.reorder_point, "substitutes": product.substitutes,
        "stock": stock,
        "on_hand": sum(x["on_hand"] for x in stock),
        "allocated": sum(x["allocated"] for x in stock),
        "available": sum(x["available"] for x in stock),
        "waiting_lines": waiting[0], "waiting_qty": int(waiting[1]),
        "inbound": inbound,
    }


def list_tasks(conn: Connection, status: str | None = "open", kind: str | None = None,
               now: datetime | None = None) -> list[dict[str, Any]]:
    """Tasks by id, each with its owner role, owner, due time and whether it is overdue at `now` (default: now)."""
    tk = t.tasks
    q = select(tk).order_by(tk.c.id)
    if status:
        q = q.where(tk.c.status == status)
    if kind:
        q = q.where(tk.c.kind == kind)
    at = now or datetime.now(UTC)
    return [task_view(r, at) for r in conn.execute(q).mappings()]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def task_view(r: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """A task as the API, chat and the dashboard show it; `overdue`: still open past its due time."""
    return {"id": r["id"], "kind": r["kind"], "sku": r["sku"], "po_id": r["po_id"], "title": r["title"],
            "detail": r["detail"], "severity": r["severity"], "status": r["status"],
            "created_at": r["created_at"].isoformat(), "closed_at": _iso(r["closed_at"]),
            "owner_role": r["owner_role"], "owner": r["owner"], "taken_at": _iso(r["taken_at"]),
            "due_at": _iso(r["due_at"]), "escalated_at": _iso(r["escalated_at"]), "closed_by": r["closed_by"],
            "outcome": r["outcome"],
            "overdue": r["status"] == "open" and r["due_at"] is not None and r["due_at"] <= now}


def list_incidents(conn: Connection, status: str | None = None, sku: str | None = None) -> list[dict[str, Any]]:
    i = t.incidents
    q = select(i).order_by(i.c.id)
    if status:
        q = q.where(i.c.status == status)
    if sku:
        q = q.where(i.c.sku == sku)
    return [
        {"id": r.id, "kind": r.kind, "sku": r.sku, "severity": r.severity, "cause": r.cause,
         "mitigation": r.mitigation, "value": float(r.value), "detail": r.detail, "status": r.status,
         "opened_at": r.opened_at.isoformat()}
        for r in conn.execute(q)
    ]


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None
