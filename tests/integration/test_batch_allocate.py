"""The batch run (services.batch.allocate_all) on both databases: it must decide what run_pass decides."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text

from services import batch
from services.allocating import run_pass
from services.batch import allocate_all, plan_chunks
from services.context import Context
from services.inbox import drain, store_events
from store import tables as t


def ev(event_id: str, type_: str, data: dict[str, Any], at: str = "2026-03-01T10:00:00Z") -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": "test", "data": data}


def order(order_id: str, placed_at: str, lines: list[tuple[str, str, int]], customer: str = "C1",
          **extra: Any) -> dict[str, Any]:
    return ev(f"o-{order_id}", "order.placed", {
        "order_id": order_id, "customer_id": customer, "placed_at": placed_at, "promised_date": "2026-03-05",
        "lines": [{"line_id": lid, "sku": sku, "qty": qty, "unit_price": 10} for lid, sku, qty in lines],
        **extra,
    })


def seed(ctx: Context) -> None:
    events = [
        ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
        ev("w2", "warehouse.upserted", {"warehouse_id": "BRS", "name": "Bristol", "region": "south"}),
        ev("s1", "supplier.upserted", {"supplier_id": "ACME", "name": "Acme", "lead_time_days": 10}),
        ev("p1", "product.upserted", {"sku": "A", "name": "Kettle", "price": 10, "supplier_id": "ACME",
                                      "lead_time_days": 14}),
        ev("p2", "product.upserted", {"sku": "B", "name": "Toaster", "price": 10, "supplier_id": "ACME"}),
        ev("p3", "product.upserted", {"sku": "C", "name": "Mug", "price": 10}),
        ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "tier": "standard", "region": "north"}),
        ev("c2", "customer.upserted", {"customer_id": "C2", "name": "Bo", "tier": "gold", "region": "south"}),
        ev("i1", "inventory.adjusted", {"sku": "A", "warehouse_id": "LDS", "on_hand": 0}),
        ev("i2", "inventory.adjusted", {"sku": "A", "warehouse_id": "BRS", "on_hand": 0}),
        ev("i3", "inventory.adjusted", {"sku": "B", "warehouse_id": "LDS", "on_hand": 0}),
        ev("i4", "inventory.adjusted", {"sku": "C", "warehouse_id": "BRS", "on_hand": 0}),
        ev("po1", "po.updated", {"po_id": "PO-1", "supplier_id": "ACME", "warehouse_id": "LDS",
                                 "expected_at": "2026-03-10", "lines": [{"sku": "A", "qty": 20}]}),
        # Ship-complete over A and B, placed first: A can never be filled now, so it is skipped whole.
        order("SC", "2026-03-01T08:00:00Z", [("1", "A", 10), ("2", "B", 1)], ship_complete=True),
        order("O3", "2026-03-01T11:00:00Z", [("1", "A", 2)]),
        order("O1", "2026-03-01T09:00:00Z", [("1", "A", 2)], customer="C2"),
        order("O2", "2026-03-01T10:00:00Z", [("1", "A", 2), ("2", "C", 1)]),
        order("O4", "2026-03-01T09:30:00Z", [("1", "B", 2)]),
    ]
    _, ids = store_events(ctx, events)
    drain(ctx, ids)
    with ctx.engine.begin() as conn:
        assert conn.execute(select(func.count()).select_from(t.order_lines)).scalar_one() == 7
        assert conn.execute(select(func.count()).select_from(t.dead_letters)).scalar_one() == 0
        # Stock arrives without an event (a missed receipt): only a batch run will notice.
        conn.execute(text("UPDATE stock SET on_hand = 3 WHERE sku = 'A' AND warehouse_id = 'LDS'"))
        conn.execute(text("UPDATE stock SET on_hand = 2 WHERE sku = 'A' AND warehouse_id = 'BRS'"))
        conn.execute(text("UPDATE stock SET on_hand = 3 WHERE sku = 'B' AND warehouse_id = 'LDS'"))


def state(conn: Connection, events_after: int = 0, audit_after: int = 0) -> dict[str, Any]:
    l, a, s, e, au = t.order_lines, t.allocations, t.stock, t.domain_events, t.audit_log
    lines = {(r.order_id, r.line_id): (r.status, r.qty_allocated, r.eta, r.eta_reason) for r in conn.execute(
        select(l.c.order_id, l.c.line_id, l.c.status, l.c.qty_allocated, l.c.eta, l.c.eta_reason))}
    allocs = sorted((r.line_pk, r.warehouse_id, r.qty, r.status) for r in conn.execute(
        select(a.c.line_pk, a.c.warehouse_id, a.c.qty, a.c.status)))
    stock = {(r.sku, r.warehouse_id): (r.on_hand, r.allocated) for r in conn.execute(select(s))}
    events = sorted((r.type, json.dumps(r.data, sort_keys=True)) for r in conn.execute(
        select(e.c.type, e.c.data).where(e.c.id > events_after)))
    audit = sorted((r.entity_id, r.action, json.dumps(r.before, sort_keys=True), json.dumps(r.after, sort_keys=True))
                   for r in conn.execute(select(au).where(au.c.id > audit_after, au.c.entity == "order_line")))
    return {"lines": lines, "allocs": allocs, "stock": stock, "events": events, "audit": audit}


def max_ids(conn: Connection) -> tuple[int, int]:
    return (conn.execute(select(func.coalesce(func.max(t.domain_events.c.id), 0))).scalar_one(),
            conn.execute(select(func.coalesce(func.max(t.audit_log.c.id), 0))).scalar_one())


def test_batch_allocates_missed_stock_fifo_and_is_idempotent(ctx: Context) -> None:
    seed(ctx)
    # What the per-event path would decide for the same state, rolled back afterwards.
    with ctx.engine.connect() as conn:
        ev_id, au_id = max_ids(conn)
        conn.rollback()
        trans = conn.begin()
        run_pass(conn, ctx, ["A", "B", "C"], "test:reference")
        expected = state(conn, ev_id, au_id)
        trans.rollback()

    seen: list[tuple[int, int]] = []
    report = allocate_all(ctx, progress=lambda done, total: seen.append((done, total)), chunk_skus=1)
    with ctx.engine.connect() as conn:
        got = state(conn, ev_id, au_id)
    assert got == expected

    lines = got["lines"]
    # A: 5 units in FIFO order (O1 09:00, O2 10:00, O3 11:00); the ship-complete order SC
    # (08:00) cannot get its 10 A, so it takes nothing, not even the B it could have.
    assert lines[("O1", "1")][:2] == ("allocated", 2)
    assert lines[("O2", "1")][:2] == ("allocated", 2)
    assert lines[("O3", "1")][:2] == ("partially_allocated", 1)
    assert lines[("SC", "1")][:2] == ("backordered", 0)
    assert lines[("SC", "2")][:2] == ("backordered", 0)
    assert lines[("O4", "1")][:2] == ("allocated", 2)
    assert lines[("O2", "2")][:2] == ("backordered", 0)
    # ETAs: PO-1 (20 A on 2026-03-10, +1 day buffer) covers SC's 10 and O3's last unit;
    # B has no PO: supplier lead time 10 days from 2026-03-02; C has no PO and no lead time.
    assert lines[("SC", "1")][2:] == (lines[("O3", "1")][2], "po:PO-1")
    assert str(lines[("O3", "1")][2]) == "2026-03-11"
    assert (str(lines[("SC", "2")][2]), lines[("SC", "2")][3]) == ("2026-03-12", "supplier_lead_time")
    assert lines[("O2", "2")][2:] == (None, "no_inbound_po_and_no_lead_time")
    assert lines[("O1", "1")][2:] == (None, None)
    # O1 is in the south (C2) and draws from BRS first; the others from LDS first.
    assert got["stock"][("A", "LDS")] == (3, 3) and got["stock"][("A", "BRS")] == (2, 2)
    assert got["stock"][("B", "LDS")] == (3, 2)

    types = [typ for typ, _ in got["events"]]
    assert types.count("line_allocated") == 3 and types.count("line_partially_allocated") == 1
    assert types.count("backorder_resolved") == 3
    data = [json.loads(d) for typ, d in got["events"] if typ == "line_allocated"]
    assert {(d["order_id"], d["line_id"]) for d in data} == {("O1", "1"), ("O2", "1"), ("O4", "1")}
    assert all(isinstance(d["line_pk"], int) for d in data)
    assert len(got["audit"]) == 4

    assert (report.lines_seen, report.lines_changed, report.units_allocated) == (7, 4, 7)
    assert report.events_written == len(got["events"])
    # A and B share the waiting ship-complete order, so they are one chunk even at chunk_skus=1.
    assert report.chunks == 2 and seen == [(2, 3), (3, 3)]

    again = allocate_all(ctx)
    assert (again.lines_changed, again.units_allocated, again.events_written) == (0, 0, 0)
    with ctx.engine.connect() as conn:
        assert state(conn, ev_id, au_id) == got


def test_batch_on_some_skus_pulls_in_ship_complete_partners(ctx: Context) -> None:
    seed(ctx)
    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE stock SET on_hand = 20 WHERE sku = 'A' AND warehouse_id = 'LDS'"))
    report = allocate_all(ctx, skus=["A"])
    assert report.skus == 2  # A, and B through order SC
    with ctx.engine.connect() as conn:
        lines = state(conn)["lines"]
    assert lines[("SC", "1")][:2] == ("allocated", 10)
    assert lines[("SC", "2")][:2] == ("allocated", 1)
    assert lines[("O2", "2")][:2] == ("backordered", 0)  # C was not asked for
    assert allocate_all(ctx, skus=["A", "B", "C"]).lines_changed == 0


def test_chunk_regroups_when_a_ship_complete_order_reaches_outside_it(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(ctx)
    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE stock SET on_hand = 20 WHERE sku = 'A' AND warehouse_id = 'LDS'"))
    # As if order SC had been placed after the chunks were planned.
    monkeypatch.setattr(batch._Sql, "ship_complete_links", lambda self, conn: [])
    seen: list[tuple[int, int]] = []
    report = allocate_all(ctx, skus=["A"], chunk_skus=1, progress=lambda d, t: seen.append((d, t)))
    assert report.chunks == 1 and seen == [(1, 1)]
    with ctx.engine.connect() as conn:
        lines = state(conn)["lines"]
    assert lines[("SC", "1")][:2] == ("allocated", 10)
    assert lines[("SC", "2")][:2] == ("allocated", 1)


def test_plan_chunks_keeps_linked_skus_together() -> None:
    assert plan_chunks(["A", "B", "C", "D"], [["A", "C"]], 1) == [["A", "C"], ["B"], ["D"]]
    assert plan_chunks(["B"], [["A", "C"], ["C", "B"]], 2) == [["A", "B", "C"]]
    assert plan_chunks(["D", "A", "B"], [], 2) == [["A", "B"], ["D"]]
    assert plan_chunks([], [["A", "B"]], 5) == []
