"""Allocation through the service layer (driven via POST /events): policies, ship-complete,
warehouses, releases, shipments, ETAs, and the audit/domain-event trail of each decision.

Every test runs on SQLite and on PostgreSQL (the `ctx` fixture).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select

from backorder.config import load_settings
from bot.api import create_app
from services.context import Context
from store import allocation_io
from store import tables as t

T = "2026-03-01T08:00:00Z"


def ev(event_id: str, type_: str, data: dict[str, Any], at: str = T) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": "test", "data": data}


def warehouse(wh: str, region: str) -> dict[str, Any]:
    return ev(f"wh-{wh}", "warehouse.upserted", {"warehouse_id": wh, "name": wh, "region": region})


def product(sku: str, lead: int | None = 14, supplier: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"sku": sku, "name": sku, "price": 10, "lead_time_days": lead}
    if supplier:
        data["supplier_id"] = supplier
    return ev(f"p-{sku}", "product.upserted", data)


def customer(cid: str, region: str | None = "north", tier: str = "standard") -> dict[str, Any]:
    data: dict[str, Any] = {"customer_id": cid, "name": cid, "tier": tier}
    if region:
        data["region"] = region
    return ev(f"c-{cid}", "customer.upserted", data)


def adjust(sku: str, wh: str, on_hand: int, eid: str, at: str = T) -> dict[str, Any]:
    return ev(eid, "inventory.adjusted", {"sku": sku, "warehouse_id": wh, "on_hand": on_hand}, at=at)


def receipt(sku: str, wh: str, qty: int, eid: str, po_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"sku": sku, "warehouse_id": wh, "qty": qty}
    if po_id:
        data["po_id"] = po_id
    return ev(eid, "inventory.received", data)


def order(order_id: str, cid: str, lines: list[tuple[str, int]], placed_at: str = "2026-03-01T09:00:00Z",
          **extra: Any) -> dict[str, Any]:
    return ev(f"o-{order_id}", "order.placed", {
        "order_id": order_id, "customer_id": cid, "placed_at": placed_at,
        "lines": [{"line_id": str(i + 1), "sku": s, "qty": q, "unit_price": 10} for i, (s, q) in enumerate(lines)],
        **extra})


def at(hour: int, minute: int = 0) -> str:
    return f"2026-03-01T{hour:02d}:{minute:02d}:00Z"


class Api:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.client = TestClient(create_app(ctx, background_applier=False))

    def post(self, *events: dict[str, Any]) -> None:
        r = self.client.post("/events", json=list(events))
        assert r.status_code == 200, r.text
        assert all(x["status"] == "accepted" for x in r.json()["results"]), r.text
        assert_invariants(self.ctx)

    def line(self, order_id: str, line_no: int = 1) -> dict[str, Any]:
        r = self.client.get(f"/orders/{order_id}")
        assert r.status_code == 200, r.text
        return r.json()["lines"][line_no - 1]

    def held(self, order_id: str, line_no: int = 1) -> dict[str, int]:
        """Active (not shipped) units per warehouse, from the allocation rows."""
        a, l = t.allocations, t.order_lines
        with self.ctx.engine.connect() as conn:
            rows = conn.execute(
                select(a.c.warehouse_id, func.sum(a.c.qty)).join(l, l.c.id == a.c.line_pk)
                .where(l.c.order_id == order_id, l.c.line_id == str(line_no), a.c.status == "allocated")
                .group_by(a.c.warehouse_id)).all()
        return {wh: int(q) for wh, q in rows}

    def stock(self, sku: str, wh: str) -> tuple[int, int]:
        s = t.stock
        with self.ctx.engine.connect() as conn:
            row = conn.execute(select(s.c.on_hand, s.c.allocated).where(s.c.sku == sku, s.c.warehouse_id == wh)).one()
        return row.on_hand, row.allocated


def with_settings(ctx: Context, **overrides: Any) -> Context:
    settings = load_settings(database_url=ctx.settings.database_url, **overrides)
    return Context(engine=ctx.engine, settings=settings, clock=ctx.clock)


def assert_invariants(ctx: Context) -> None:
    with ctx.engine.connect() as conn:
        check_invariants(conn)


def check_invariants(conn: Connection) -> None:
    s, l, a = t.stock, t.order_lines, t.allocations
    bad_stock = conn.execute(select(s).where((s.c.allocated < 0) | (s.c.allocated > s.c.on_hand))).all()
    assert not bad_stock, f"stock out of bounds: {bad_stock}"
    bad_lines = conn.execute(select(l).where(
        (l.c.qty_shipped < 0) | (l.c.qty_shipped > l.c.qty_allocated) | (l.c.qty_allocated > l.c.qty))).all()
    assert not bad_lines, f"line out of bounds: {bad_lines}"
    active = dict(conn.execute(select(a.c.sku + "@" + a.c.warehouse_id, func.sum(a.c.qty))
                               .where(a.c.status == "allocated").group_by(a.c.sku, a.c.warehouse_id)).all())
    for r in conn.execute(select(s.c.sku, s.c.warehouse_id, s.c.allocated)):
        assert int(active.get(f"{r.sku}@{r.warehouse_id}", 0)) == r.allocated, (r, active)
    per_line = dict(conn.execute(select(a.c.line_pk, func.sum(a.c.qty)).where(a.c.status == "allocated")
                                 .group_by(a.c.line_pk)).all())
    for r in conn.execute(select(l.c.id, l.c.qty_allocated, l.c.qty_shipped, l.c.status)):
        assert int(per_line.get(r.id, 0)) == r.qty_allocated - r.qty_shipped, r


def events_of(ctx: Context, cause: str) -> list[tuple[str, dict[str, Any]]]:
    d = t.domain_events
    with ctx.engine.connect() as conn:
        return [(r.type, r.data) for r in conn.execute(select(d.c.type, d.c.data).where(d.c.cause == cause)
                                                       .order_by(d.c.id))]


def audit_of(ctx: Context, cause: str) -> list[Any]:
    au = t.audit_log
    with ctx.engine.connect() as conn:
        return conn.execute(select(au).where(au.c.reason == cause).order_by(au.c.id)).all()


def base(*customers: dict[str, Any]) -> list[dict[str, Any]]:
    return [warehouse("LDS", "north"), warehouse("BRS", "south"), product("A"), product("B"),
            *(customers or (customer("C1"),))]


# --- policies --------------------------------------------------------------------------------------


def test_fifo_serves_earliest_placed_first_then_order_id(ctx: Context) -> None:
    api = Api(ctx)
    api.post(*base())
    api.post(order("late", "C1", [("A", 3)], placed_at=at(10)))
    api.post(order("early", "C1", [("A", 3)], placed_at=at(9)))  # arrives later, placed earlier
    api.post(order("tie-b", "C1", [("A", 1)], placed_at=at(11)), order("tie-a", "C1", [("A", 1)], placed_at=at(11)))
    api.post(receipt("A", "LDS", 4, "r1"))
    assert [api.line(o)["qty_allocated"] for o in ("early", "late", "tie-a", "tie-b")] == [3, 1, 0, 0]
    api.post(receipt("A", "LDS", 3, "r2"))
    assert [api.line(o)["qty_allocated"] for o in ("early", "late", "tie-a", "tie-b")] == [3, 3, 1, 0]


def test_priority_policy_tier_then_rush_then_promised_date_then_fifo(ctx: Context) -> None:
    api = Api(with_settings(ctx, allocation={"policy": "priority"}))
    api.post(*base(customer("STD"), customer("GOLD", tier="gold"), customer("PLAT", tier="platinum")))
    api.post(
        order("std-early", "STD", [("A", 1)], placed_at=at(8)),
        order("std-rush", "STD", [("A", 1)], placed_at=at(12), rush=True),
        order("std-promised", "STD", [("A", 1)], placed_at=at(13), promised_date="2026-03-03"),
        order("gold", "GOLD", [("A", 1)], placed_at=at(14)),
        order("plat", "PLAT", [("A", 1)], placed_at=at(15)),
    )
    expected = ["plat", "gold", "std-rush", "std-promised", "std-early"]
    for n in range(1, len(expected) + 1):
        api.post(receipt("A", "LDS", 1, f"r{n}"))
        served = {o for o in expected if api.line(o)["status"] == "allocated"}
        assert served == set(expected[:n]), (n, served)


def test_fifo_ignores_tier(ctx: Context) -> None:
    api = Api(ctx)
    api.post(*base(customer("STD"), customer("PLAT", tier="platinum")))
    api.post(order("std", "STD", [("A", 1)], placed_at=at(8)), order("plat", "PLAT", [("A", 1)], placed_at=at(9)))
    api.post(receipt("A", "LDS", 1, "r1"))
    assert (api.line("std")["status"], api.line("plat")["status"]) == ("allocated", "backordered")


def test_partial_allocation_is_the_default(ctx: Context) -> None:
    api = Api(ctx)
    api.post(*base(), adjust("A", "LDS", 2, "adj"))
    api.post(order("1", "C1", [("A", 5)]))
    line = api.line("1")
    assert (line["status"], line["qty_allocated"]) == ("partially_allocated", 2)


# --- ship-complete ---------------------------------------------------------------------------------


def test_ship_complete_all_or_nothing_without_blocking_others(ctx: Context) -> None:
    api = Api(ctx)
    api.post(*base(), adjust("A", "LDS", 5, "adj-a"), adjust("B", "LDS", 1, "adj-b"))
    api.post(order("sc", "C1", [("A", 2), ("B", 2)], placed_at=at(9), ship_complete=True))
    api.post(order("later", "C1", [("A", 3)], placed_at=at(10)))
    assert [api.line("sc", n)["qty_allocated"] for n in (1, 2)] == [0, 0]
    assert api.line("later")["status"] == "allocated"  # skipped order does not block the next line
    assert api.stock("B", "LDS") == (1, 0)
    api.post(receipt("B", "LDS", 1, "r-b"))
    assert [api.line("sc", n)["status"] for n in (1, 2)] == ["allocated", "allocated"]
    assert api.stock("A", "LDS") == (5, 5) and api.stock("B", "LDS") == (2, 2)


def test_ship_complete_loses_every_unit_when_a_count_goes_down(ctx: Context) -> None:
    api = Api(ctx)
    api.post(*base(), adjust("A", "LDS", 2, "adj-a"), adjust("B", "LDS", 2, "adj-b"))
    api.post(order("sc", "C1", [("A", 2), ("B", 2)], ship_complete=True))
    assert [api.line("sc", n)["status"] for n in (1, 2)] == ["allocated", "allocated"]
    api.post(adjust("B", "LDS", 1, "adj-b2", at=at(12)))
    assert [api.line("sc", n)["qty_allocated"] for n in (1, 2)] == [0, 0]
    assert api.stock("A", "LDS") == (2, 0)


# --- warehouses --------------------------------------------------------------------------------------


def test_region_warehouse_first_then_configured_order_with_split(ctx: Context) -> None:
    api = Api(with_settings(ctx, allocation={"warehouse_order": ["MAN", "LDS", "BRS"]}))
    api.post(*base(customer("S", region="south"), customer("N", region="north"), customer("X", region=None)),
             warehouse("MAN", "east"),
             adjust("A", "LDS", 10, "a1"), adjust("A", "BRS", 2, "a2"), adjust("A", "MAN", 1, "a3"))
    api.post(order("south", "S", [("A", 4)], placed_at=at(9)))
    assert api.held("south") == {"BRS": 2, "MAN": 1, "LDS": 1}  # own region, then MAN, then LDS
    api.post(order("north", "N", [("A", 2)], placed_at=at(10)))
    assert api.held("north") == {"LDS": 2}
    api.post(adjust("A", "MAN", 3, "a4", at=at(11)))
    api.post(order("noregion", "X", [("A", 3)], placed_at=at(12)))
    assert api.held("noregion") == {"MAN": 2, "LDS": 1}  # configured order: MAN (2 left), then LDS


def test_no_split_takes_one_warehouse(ctx: Context) -> None:
    api = Api(with_settings(ctx, allocation={"allow_split": False}))
    api.post(*base(customer("S", region="south")), adjust("A", "BRS", 2, "a1"), adjust("A", "LDS", 5, "a2"))
    api.post(order("1", "S", [("A", 4)]))
    assert api.held("1") == {"LDS": 4}
    api.post(order("2", "S", [("A", 3)], placed_at=at(10)))
    assert api.held("2") == {"BRS": 2}  # the most any single warehouse can give; the rest waits
    assert api.line("2")["status"] == "partially_allocated"
    api.post(receipt("A", "LDS", 5, "r1"))
    assert api.held("2") == {"BRS": 2}  # it grows only where it already holds units


def test_split_allowed_by_default(ctx: Context) -> None:
    api = Api(ctx)
    api.post(*base(customer("S", region="south")), adjust("A", "BRS", 2, "a1"), adjust("A", "LDS", 5, "a2"))
    api.post(order("1", "S", [("A", 4)]))
    assert api.held("1") == {"BRS": 2, "LDS": 2}


# --- releases ---------------------------------------------------------------------------------------


def test_cancellation_reallocates_to_next_line_in_same_transaction(ctx: Context) -> None:
    api = Api(ctx)
    api.post(*base(), adjust("A", "LDS", 3, "adj"))
    api.post(order("1", "C1", [("A", 3)], placed_at=at(9)), order("2", "C1", [("A", 2)], placed_at=at(10)),
             order("3", "C1", [("A", 2)], placed_at=at(11)))
    api.post(ev("cx", "order.cancelled", {"order_id": "1", "reason": "changed mind"}))
    assert api.line("1")["status"] == "cancelled" and api.line("1")["qty_allocated"] == 0
    assert (api.line("2")["status"], api.line("3")["qty_allocated"]) == ("allocated", 1)
    types = [ty for ty, _ in events_of(ctx, "test:cx")]
    assert types[0] == "line_cancelled"
    assert {"line_allocated", "backorder_resolved", "line_partially_allocated"} <= set(types)
    assert {(r.entity_id, r.action) for r in audit_of(ctx, "test:cx")} >= {
        ("1/1", "cancelled"), ("2/1", "allocated"), ("3/1", "partially_allocated")}
    with ctx.engine.connect() as conn:
        assert conn.execute(select(t.orders.c.status).where(t.orders.c.order_id == "1")).scalar_one() == "cancelled"


def test_cancel_some_lines_keeps_the_others(ctx: Context) -> None:
    api = Api(ctx)
    api.post(*base(), adjust("A", "LDS", 3, "a1"), adjust("B", "LDS", 3, "a2"))
    api.post(order("1", "C1", [("A", 1), ("B", 1)]))
    api.post(ev("cx", "order.cancelled", {"order_id": "1", "line_ids": ["2"]}))
    assert (api.line("1", 1)["status"], api.line("1", 2)["status"]) == ("allocated", "cancelled")
    assert api.stock("B", "LDS") == (3, 0)


def test_downward_adjustment_releases_lowest_priority_and_reallocates(ctx: Context) -> None:
    api = Api(ctx)
    api.post(*base(), adjust("A", "LDS", 4, "a1"), adjust("A", "BRS", 1, "a2"))
    api.post(order("first", "C1", [("A", 2)], placed_at=at(9)), order("second", "C1", [("A", 2)], placed_at=at(10)))
    assert (api.held("first"), api.held("second")) == ({"LDS": 2}, {"LDS": 2})
    api.post(adjust("A", "LDS", 3, "down", at=at(12)))
    assert api.held("first") == {"LDS": 2}
    assert api.held("second") == {"LDS": 1, "BRS": 1}  # lost 1 in LDS, got 1 from BRS in the same pass
    api.post(adjust("A", "LDS", 0, "zero", at=at(13)))
    assert api.held("first") == {"BRS": 1} or api.held("second") == {"BRS": 1}
    assert api.stock("A", "LDS") == (0, 0) and api.stock("A", "BRS") == (1, 1)
    down = events_of(ctx, "test:down")
    assert [ty for ty, _ in down][:2] == ["allocation_released", "line_allocated"]
    assert down[0][1]["order_id"] == "second" and down[0][1]["warehouses"] == {"LDS": 1}
    assert down[1][1]["order_id"] == "second" and down[1][1]["warehouses"] == {"BRS": 1}


def test_downward_adjustment_under_priority_releases_standard_before_gold(ctx: Context) -> None:
    api = Api(with_settings(ctx, allocation={"policy": "priority"}))
    api.post(*base(customer("STD"), customer("GOLD", tier="gold")), adjust("A", "LDS", 4, "a1"))
    api.post(order("gold", "GOLD", [("A", 2)], placed_at=at(10)), order("std", "STD", [("A", 2)], placed_at=at(9)))
    api.post(adjust("A", "LDS", 2, "down", at=at(12)))
    assert (api.line("gold")["status"], api.line("std")["status"]) == ("allocated", "backordered")


# --- shipments ----------------------------------------------------------------------------------------


def test_shipment_moves_allocated_to_shipped_never_twice(ctx: Context) -> None:
    api = Api(ctx)
    api.post(*base(), adjust("A", "LDS", 3, "adj"))
    api.post(order("1", "C1", [("A", 5)]))
    api.post(ev("sh1", "shipment.updated", {"order_id": "1", "carrier": "DPD"}))
    line = api.line("1")
    assert (line["qty_shipped"], line["qty_allocated"], line["status"]) == (3, 3, "partially_allocated")
    assert api.stock("A", "LDS") == (0, 0)
    api.post(ev("sh2", "shipment.updated", {"order_id": "1", "status": "in_transit"}))
    assert api.line("1")["qty_shipped"] == 3  # nothing newly allocated: nothing more ships
    assert api.stock("A", "LDS") == (0, 0)
    api.post(receipt("A", "LDS", 2, "r1"))
    assert api.line("1")["qty_allocated"] == 5
    api.post(ev("sh3", "shipment.updated", {"order_id": "1", "status": "delivered"}))
    line = api.line("1")
    assert (line["qty_shipped"], line["status"]) == (5, "shipped")
    api.post(ev("sh4", "shipment.updated", {"order_id": "1"}))
    assert api.line("1")["qty_shipped"] == 5
    i = t.inbox
    with ctx.engine.connect() as conn:
        assert conn.execute(select(i.c.status).where(i.c.event_id == "sh4")).scalar_one() == "ignored"
    assert api.stock("A", "LDS") == (0, 0)
    a = t.allocations
    with ctx.engine.connect() as conn:
        shipped = conn.execute(select(func.sum(a.c.qty)).where(a.c.status == "shipped")).scalar_one()
    assert shipped == 5


def test_label_created_moves_nothing(ctx: Context) -> None:
    api = Api(ctx)
    api.post(*base(), adjust("A", "LDS", 3, "adj"), order("1", "C1", [("A", 2)]))
    api.post(ev("sh1", "shipment.updated", {"order_id": "1", "status": "label_created"}))
    assert api.line("1")["qty_shipped"] == 0 and api.stock("A", "LDS") == (3, 2)


# --- audit trail and domain events --------------------------------------------------------------------


def test_decisions_write_domain_events_and_audit_rows(ctx: Context) -> None:
    api = Api(ctx)
    api.post(*base())
    api.post(order("1", "C1", [("A", 2)]))
    (backordered,) = [d for ty, d in events_of(ctx, "test:o-1") if ty == "line_backordered"]
    assert (backordered["order_id"], backordered["line_id"], backordered["waiting"]) == ("1", "1", 2)
    api.post(receipt("A", "LDS", 2, "r1"))
    types = [ty for ty, _ in events_of(ctx, "test:r1")]
    assert {"line_allocated", "backorder_resolved"} <= set(types)
    rows = audit_of(ctx, "test:r1")
    stock_row = next(r for r in rows if r.entity == "stock")
    assert (stock_row.entity_id, stock_row.before, stock_row.after) == ("A@LDS", {"on_hand": 0}, {"on_hand": 2})
    line_row = next(r for r in rows if r.entity == "order_line")
    assert line_row.entity_id == "1/1" and line_row.before["status"] == "backordered"
    assert line_row.after == {"status": "allocated", "qty_allocated": 2, "qty_shipped": 0, "allocations": {"LDS": 2},
                              "eta": None, "eta_reason": None}
    assert line_row.actor == "allocator"


def test_a_failed_unit_of_work_leaves_no_partial_state(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api(ctx)
    api.post(*base(), order("1", "C1", [("A", 2)]))
    audit_before, events_before = (len(audit_of(ctx, "test:r1")), len(events_of(ctx, "test:r1")))

    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(allocation_io, "write_events", boom)
    api.post(receipt("A", "LDS", 2, "r1"))
    monkeypatch.undo()
    i = t.inbox
    with ctx.engine.connect() as conn:
        status, note = conn.execute(select(i.c.status, i.c.note).where(i.c.event_id == "r1")).one()
        stock_rows = conn.execute(select(func.count()).select_from(t.stock)).scalar_one()
    assert status == "parked" and "disk on fire" in note
    assert stock_rows == 0 and api.line("1")["qty_allocated"] == 0
    assert (len(audit_of(ctx, "test:r1")), len(events_of(ctx, "test:r1"))) == (audit_before, events_before) == (0, 0)


# --- ETA ------------------------------------------------------------------------------------------------


def test_eta_from_purchase_order_plus_receiving_buffer(ctx: Context) -> None:
    api = Api(with_settings(ctx, allocation={"receiving_buffer_days": 3}))
    api.post(*base(), ev("s", "supplier.upserted", {"supplier_id": "ACME", "name": "Acme", "lead_time_days": 20}),
             product("P", lead=None, supplier="ACME"))
    api.post(order("1", "C1", [("P", 4)], placed_at=at(9)), order("2", "C1", [("P", 4)], placed_at=at(10)))
    # today is 2026-03-02 (the clock); no PO: supplier lead time
    assert (api.line("1")["eta"], api.line("1")["eta_reason"]) == ("2026-03-22", "supplier_lead_time")
    api.post(ev("po1", "po.updated", {"po_id": "PO-1", "supplier_id": "ACME", "warehouse_id": "LDS",
                                      "expected_at": "2026-03-10", "lines": [{"sku": "P", "qty": 6}]}))
    assert (api.line("1")["eta"], api.line("1")["eta_reason"]) == ("2026-03-13", "po:PO-1")
    assert api.line("2")["eta"] == "2026-03-22"  # beyond the PO's cover (6 of 8)
    api.post(ev("po2", "po.updated", {"po_id": "PO-0", "supplier_id": "ACME", "warehouse_id": "LDS",
                                      "expected_at": "2026-02-20", "lines": [{"sku": "P", "qty": 2}]}))
    # An overdue PO counts as arriving today: PO-0 (2) then PO-1 (6) cover both orders.
    assert api.line("1")["eta"] == "2026-03-13" and api.line("2")["eta"] == "2026-03-13"
    api.post(receipt("P", "LDS", 4, "r1", po_id="PO-0"))
    assert api.line("1")["eta"] is None and api.line("1")["status"] == "allocated"
    assert (api.line("2")["eta"], api.line("2")["eta_reason"]) == ("2026-03-13", "po:PO-1")
    eta_events = [d for ty, d in events_of(ctx, "test:po1") if ty == "eta_changed"]
    assert [(d["order_id"], d["new_eta"]) for d in eta_events] == [("1", "2026-03-13")]
