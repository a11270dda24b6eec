"""Handlers for the reference data events: warehouses, suppliers, products, customers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, select

from services.allocating import run_pass
from services.context import Context
from services.deadletters import release_waiting_on
from services.outcomes import Ignore
from store import tables as t
from store.upsert import upsert_newer


def _write(conn: Connection, table: Table, row: dict[str, Any], key: str) -> None:
    if not upsert_newer(conn, table, row, [key]):
        raise Ignore(f"stale: {key} {row[key]} was updated by a newer event")


def warehouse_upserted(conn: Connection, ctx: Context, data: dict[str, Any], at: datetime, cause: str) -> None:
    _write(conn, t.warehouses, {"warehouse_id": data["warehouse_id"], "name": data["name"],
                                "region": data.get("region"), "updated_at": at}, "warehouse_id")
    release_waiting_on(conn, "warehouse", data["warehouse_id"], ctx.now())


def supplier_upserted(conn: Connection, ctx: Context, data: dict[str, Any], at: datetime, cause: str) -> None:
    old = conn.execute(select(t.suppliers.c.lead_time_days)
                       .where(t.suppliers.c.supplier_id == data["supplier_id"])).scalar_one_or_none()
    _write(conn, t.suppliers, {"supplier_id": data["supplier_id"], "name": data["name"],
                               "lead_time_days": data.get("lead_time_days"), "email": data.get("email"),
                               "updated_at": at}, "supplier_id")
    if old != data.get("lead_time_days"):
        # A new lead time moves the ETA of every line beyond PO cover of this supplier's SKUs.
        p = t.products
        skus = conn.execute(select(p.c.sku).where(p.c.supplier_id == data["supplier_id"])).scalars().all()
        if skus:
            run_pass(conn, ctx, skus, cause)


def product_upserted(conn: Connection, ctx: Context, data: dict[str, Any], at: datetime, cause: str) -> None:
    p = t.products
    known = {"sku", "name", "price", "supplier_id", "lead_time_days", "reorder_point", "substitutes", "category",
             "attributes"}
    old = conn.execute(select(p.c.lead_time_days, p.c.supplier_id).where(p.c.sku == data["sku"])).first()
    extra = {k: v for k, v in data.items() if k not in known}
    if isinstance(data.get("attributes"), dict):
        # Kept in extra rather than a column: only substitute matching reads them (allocation/substitutes.py).
        extra["attributes"] = dict(data["attributes"])
    _write(conn, p, {
        "sku": data["sku"], "name": data["name"], "price": Decimal(str(data.get("price", 0))),
        "supplier_id": data.get("supplier_id"), "lead_time_days": data.get("lead_time_days"),
        "reorder_point": data.get("reorder_point") or 0, "substitutes": list(data.get("substitutes") or []),
        "category": data.get("category"), "extra": extra,
        "updated_at": at,
    }, "sku")
    if old is not None and (old.lead_time_days, old.supplier_id) != (data.get("lead_time_days"),
                                                                     data.get("supplier_id")):
        run_pass(conn, ctx, [data["sku"]], cause)
    release_waiting_on(conn, "product", data["sku"], ctx.now())


def customer_upserted(conn: Connection, ctx: Context, data: dict[str, Any], at: datetime, cause: str) -> None:
    _write(conn, t.customers, {
        "customer_id": data["customer_id"], "name": data["name"], "tier": data.get("tier") or "standard",
        "region": data.get("region"), "timezone": data.get("timezone") or "UTC",
        "locale": data.get("locale") or "en",
        "contacts": {k: v for k, v in (data.get("contacts") or {}).items() if v},
        # Only what the customer chose is kept: defaults come from configuration at send time.
        "preferences": {k: v for k, v in (data.get("preferences") or {}).items() if v not in (None, [])},
        "tags": list(dict.fromkeys(data.get("tags") or [])), "updated_at": at,
    }, "customer_id")
    release_waiting_on(conn, "customer", data["customer_id"], ctx.now())
