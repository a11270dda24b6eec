"""Reference data delivered out of order never moves backwards."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from services.context import Context
from services.inbox import drain, store_events
from store import tables as t


def ev(event_id: str, type_: str, at: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": "erp", "data": data}


def test_an_older_upsert_loses_to_a_newer_one(ctx: Context) -> None:
    newer = ev("p2", "product.upserted", "2026-03-01T12:00:00+01:00", {"sku": "KTL", "name": "Kettle v2",
                                                                        "price": "50.00", "lead_time_days": 3})
    older = ev("p1", "product.upserted", "2026-03-01T10:30:00Z", {"sku": "KTL", "name": "Kettle v1",
                                                                   "price": "40.00", "lead_time_days": 9})
    customer_new = ev("c2", "customer.upserted", "2026-03-02T00:00:00Z", {"customer_id": "C", "name": "Ada",
                                                                          "tier": "gold"})
    customer_old = ev("c1", "customer.upserted", "2026-03-01T00:00:00Z", {"customer_id": "C", "name": "Ada",
                                                                          "tier": "standard"})
    _, ids = store_events(ctx, [newer, older, customer_new, customer_old])
    drain(ctx, ids)
    with ctx.engine.connect() as conn:
        product = conn.execute(select(t.products.c.name, t.products.c.price, t.products.c.lead_time_days)).one()
        tier = conn.execute(select(t.customers.c.tier)).scalar_one()
        statuses = dict(conn.execute(select(t.inbox.c.event_id, t.inbox.c.status)).tuples().all())
    # 12:00+01:00 is 11:00Z: later than 10:30Z, whatever the offsets say at a glance.
    assert (product.name, float(product.price), product.lead_time_days) == ("Kettle v2", 50.0, 3)
    assert tier == "gold"
    assert statuses == {"p2": "applied", "p1": "ignored", "c2": "applied", "c1": "ignored"}


def test_an_update_with_the_same_timestamp_still_applies(ctx: Context) -> None:
    at = "2026-03-01T10:00:00Z"
    _, ids = store_events(ctx, [
        ev("w1", "warehouse.upserted", at, {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
        ev("w2", "warehouse.upserted", at, {"warehouse_id": "LDS", "name": "Leeds DC", "region": "north"}),
    ])
    drain(ctx, ids)
    with ctx.engine.connect() as conn:
        assert conn.execute(select(t.warehouses.c.name)).scalar_one() == "Leeds DC"
