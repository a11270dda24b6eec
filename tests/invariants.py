"""The store's allocation invariants, checked after every event by the replay property test and the
regression tests that replay a stream it once found, and after what an integration test posts or does
(post_events, invariants_hold)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, func, select

from store import tables as t

OPEN = ("backordered", "partially_allocated", "allocated")


def check_invariants(conn: Connection, where: str) -> None:
    s, l, a, o = t.stock, t.order_lines, t.allocations, t.orders
    bad = conn.execute(select(s.c.sku, s.c.warehouse_id, s.c.on_hand, s.c.allocated)
                       .where((s.c.allocated < 0) | (s.c.allocated > s.c.on_hand))).all()
    assert not bad, f"{where}: stock out of bounds {bad}"
    bad = conn.execute(select(l.c.order_id, l.c.line_id, l.c.qty, l.c.qty_allocated, l.c.qty_shipped).where(
        (l.c.qty_shipped < 0) | (l.c.qty_shipped > l.c.qty_allocated) | (l.c.qty_allocated > l.c.qty))).all()
    assert not bad, f"{where}: line out of bounds {bad}"
    active_stock = {(r.sku, r.warehouse_id): int(r.q) for r in conn.execute(
        select(a.c.sku, a.c.warehouse_id, func.sum(a.c.qty).label("q")).where(a.c.status == "allocated")
        .group_by(a.c.sku, a.c.warehouse_id))}
    for r in conn.execute(select(s.c.sku, s.c.warehouse_id, s.c.allocated)):
        assert active_stock.pop((r.sku, r.warehouse_id), 0) == r.allocated, f"{where}: stock {r} vs rows"
    assert not any(active_stock.values()), f"{where}: allocation rows without stock {active_stock}"
    active_line = {r.line_pk: int(r.q) for r in conn.execute(
        select(a.c.line_pk, func.sum(a.c.qty).label("q")).where(a.c.status == "allocated").group_by(a.c.line_pk))}
    sc_open: dict[str, list[Any]] = {}
    for r in conn.execute(select(l.c.id, l.c.order_id, l.c.qty, l.c.qty_allocated, l.c.qty_shipped, l.c.status,
                                 o.c.ship_complete).join(o, o.c.order_id == l.c.order_id)):
        held = active_line.get(r.id, 0)
        assert held == r.qty_allocated - r.qty_shipped, f"{where}: line {r} holds {held}"
        if r.status == "cancelled":
            assert held == 0, f"{where}: cancelled line {r} holds {held}"
        if r.ship_complete and r.status in OPEN:
            sc_open.setdefault(r.order_id, []).append(r)
    for order_id, rows in sc_open.items():
        full = [r.qty_allocated == r.qty for r in rows]
        holding = [active_line.get(r.id, 0) > 0 for r in rows]
        assert all(full) or not any(holding), f"{where}: ship-complete order {order_id} half allocated: {rows}"


def invariants_hold(engine: Engine) -> None:
    """check_invariants on a connection of its own, after what the test did."""
    with engine.connect() as conn:
        check_invariants(conn, "after")


def post_events(client: TestClient, events: list[dict[str, Any]], engine: Engine) -> None:
    """POST /events: every event accepted, and the invariants hold after them."""
    r = client.post("/events", json=events)
    assert r.status_code == 200, r.text
    assert all(x["status"] == "accepted" for x in r.json()["results"]), r.text
    invariants_hold(engine)
