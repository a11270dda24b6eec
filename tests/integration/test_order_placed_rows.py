"""What order.placed writes for its order and lines: filled, partly filled and waiting lines, one event each way.

The handler inserts the order with its lines (one statement on PostgreSQL) and stamps backordered_at only on
lines still waiting after their first pass, skipping the stamp when the pass filled every line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from services.context import Context
from services.inbox import drain, store_events
from store import tables as t

AT = "2026-03-01T10:00:00+00:00"
PLACED = "2026-03-01T08:30:00+02:00"


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": AT, "source": "erp", "data": data}


def apply(ctx: Context, events: list[dict[str, Any]]) -> None:
    _, ids = store_events(ctx, events)
    drain(ctx, ids)


def test_lines_and_their_backorder_stamps(ctx: Context) -> None:
    apply(ctx, [
        ev("w", "warehouse.upserted", {"warehouse_id": "W1", "name": "W1", "region": "north"}),
        ev("c", "customer.upserted", {"customer_id": "C1", "name": "C1", "region": "north", "tier": "gold"}),
        *[ev(f"p{s}", "product.upserted", {"sku": s, "name": s, "price": "2.00"}) for s in ("A", "B", "C")],
        ev("ra", "inventory.received", {"sku": "A", "warehouse_id": "W1", "qty": 10}),
        ev("rb", "inventory.received", {"sku": "B", "warehouse_id": "W1", "qty": 1}),
    ])
    apply(ctx, [
        ev("o1", "order.placed", {"order_id": "O1", "customer_id": "C1", "placed_at": PLACED, "rush": True,
                                  "channel": "web", "lines": [
                                      {"line_id": "1", "sku": "A", "qty": 2, "unit_price": "3.10"},
                                      {"line_id": "2", "sku": "B", "qty": 3, "unit_price": "4.00"},
                                      {"line_id": "3", "sku": "C", "qty": 1}]}),
        ev("o2", "order.placed", {"order_id": "O2", "customer_id": "C1", "promised_date": "2026-03-09",
                                  "lines": [{"line_id": "1", "sku": "A", "qty": 1, "unit_price": "3.00"}]}),
    ])
    o, l = t.orders, t.order_lines
    with ctx.engine.connect() as conn:
        orders = {r.order_id: r for r in conn.execute(select(o))}
        lines = {(r.order_id, r.line_id): r for r in conn.execute(select(l))}
    placed = datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    assert (orders["O1"].customer_id, orders["O1"].placed_at, orders["O1"].promised_date, orders["O1"].rush,
            orders["O1"].ship_complete, orders["O1"].channel, orders["O1"].source, orders["O1"].status) == (
        "C1", placed, None, True, False, "web", "erp", "open")
    assert (orders["O2"].placed_at, str(orders["O2"].promised_date), orders["O2"].rush, orders["O2"].channel) == (
        datetime.fromisoformat(AT), "2026-03-09", False, None)
    got = {key: (r.sku, r.qty, r.unit_price, r.qty_allocated, r.status, r.backordered_at) for key, r in lines.items()}
    assert got == {
        ("O1", "1"): ("A", 2, Decimal("3.10"), 2, "allocated", None),
        ("O1", "2"): ("B", 3, Decimal("4.00"), 1, "partially_allocated", placed),
        ("O1", "3"): ("C", 1, Decimal("0.00"), 0, "backordered", placed),
        # Every line filled at once: no stamp at all.
        ("O2", "1"): ("A", 1, Decimal("3.00"), 1, "allocated", None),
    }
