"""services.ops_figures against hand-computed figures, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from backorder.config import Settings
from services import ops_figures as of
from services import ops_queues
from store import tables as t

TODAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def seed_waiting(engine: Engine) -> None:
    """Nine lines; six wait. Prices and quantities are chosen so every figure below is checkable by hand.

    line  cust  tier      sku  supplier  qty alloc shipped status               price  waited (days)  waiting value
    L1    C1    gold      A    S1        10  4     0       partially_allocated  5.00   0 (today)      6      30.00
    L2    C1    gold      B    S2        2   0     0       backordered          100.0  2              2      200.00
    L3    C2    standard  A    S1        5   3     2       partially_allocated  5.00   3              2      10.00
    L4    C2    standard  C    -         1   0     0       backordered          7.50   8 (7d 23h ago) 1      7.50
    L5    C3    standard  B    S2        3   0     0       backordered          100.0  8  (placed_at)  3      300.00
    L6    C3    standard  A    S1        4   0     0       backordered          5.00   31             4      20.00
    L7    C1    gold      A    S1        9   9     9       shipped              5.00   -              0
    L8    C2    standard  B    S2        5   5     0       allocated            100.0  -              0
    L9    C3    standard  C    -         2   0     0       cancelled            7.50   -              0
    """
    with engine.begin() as conn:
        conn.execute(insert(t.warehouses), [{"warehouse_id": "W-EU", "name": "EU", "region": "eu"},
                                            {"warehouse_id": "W-US", "name": "US", "region": "us"}])
        conn.execute(insert(t.customers), [
            {"customer_id": "C1", "name": "One", "tier": "gold", "region": "eu"},
            {"customer_id": "C2", "name": "Two", "tier": "standard", "region": "us"},
            {"customer_id": "C3", "name": "Three", "tier": "standard", "region": "apac"},
        ])
        conn.execute(insert(t.products), [
            {"sku": "A", "name": "A", "price": Decimal("5"), "supplier_id": "S1"},
            {"sku": "B", "name": "B", "price": Decimal("100"), "supplier_id": "S2"},
            {"sku": "C", "name": "C", "price": Decimal("7.5"), "supplier_id": None},
        ])
        conn.execute(insert(t.orders), [
            {"order_id": f"O{i}", "customer_id": c, "placed_at": NOW - timedelta(days=40), "status": "open"}
            for i, c in ((1, "C1"), (2, "C2"), (3, "C3"))
        ])

        def line(lid: str, order: str, sku: str, qty: int, alloc: int, shipped: int, status: str, price: str,
                 waited: datetime | None) -> dict[str, Any]:
            return {"order_id": order, "line_id": lid, "sku": sku, "qty": qty, "qty_allocated": alloc,
                    "qty_shipped": shipped, "status": status, "unit_price": Decimal(price), "backordered_at": waited}

        conn.execute(insert(t.order_lines), [
            line("L1", "O1", "A", 10, 4, 0, "partially_allocated", "5", NOW),
            line("L2", "O1", "B", 2, 0, 0, "backordered", "100", NOW - timedelta(days=2)),
            line("L3", "O2", "A", 5, 3, 2, "partially_allocated", "5", NOW - timedelta(days=3)),
            # 7 days and 23 hours before 09:00 today: it started waiting on day today-8 at 10:00.
            line("L4", "O2", "C", 1, 0, 0, "backordered", "7.5", NOW - timedelta(days=7, hours=23)),
            line("L7", "O1", "A", 9, 9, 9, "shipped", "5", NOW - timedelta(days=20)),
            line("L8", "O2", "B", 5, 5, 0, "allocated", "100", NOW - timedelta(days=20)),
            line("L9", "O3", "C", 2, 0, 0, "cancelled", "7.5", NOW - timedelta(days=20)),
            line("L6", "O3", "A", 4, 0, 0, "backordered", "5", NOW - timedelta(days=31)),
        ])
        # L5 has no backordered_at yet: its order's placed_at (8 days ago) is when it started waiting.
        conn.execute(insert(t.orders).values(order_id="O4", customer_id="C3", placed_at=NOW - timedelta(days=8),
                                             status="open"))
        conn.execute(insert(t.order_lines).values(**line("L5", "O4", "B", 3, 0, 0, "backordered", "100", None)))


def test_open_backorders_by_each_grouping(engine: Engine) -> None:
    seed_waiting(engine)
    with engine.connect() as conn:
        assert of.open_backorders(conn, "sku") == [
            {"key": "B", "lines": 2, "units": 5, "value": 500.0},
            {"key": "A", "lines": 3, "units": 12, "value": 60.0},
            {"key": "C", "lines": 1, "units": 1, "value": 7.5},
        ]
        assert of.open_backorders(conn, "supplier") == [
            {"key": "S2", "lines": 2, "units": 5, "value": 500.0},
            {"key": "S1", "lines": 3, "units": 12, "value": 60.0},
            {"key": "(none)", "lines": 1, "units": 1, "value": 7.5},
        ]
        assert of.open_backorders(conn, "tier") == [
            {"key": "standard", "lines": 4, "units": 10, "value": 337.5},
            {"key": "gold", "lines": 2, "units": 8, "value": 230.0},
        ]
        assert of.open_backorders(conn, "customer") == [
            {"key": "C3", "lines": 2, "units": 7, "value": 320.0},
            {"key": "C1", "lines": 2, "units": 8, "value": 230.0},
            {"key": "C2", "lines": 2, "units": 3, "value": 17.5},
        ]
        assert of.open_backorders(conn, "warehouse") == [
            {"key": "(none)", "lines": 2, "units": 7, "value": 320.0},
            {"key": "W-EU", "lines": 2, "units": 8, "value": 230.0},
            {"key": "W-US", "lines": 2, "units": 3, "value": 17.5},
        ]
        with pytest.raises(ValueError, match="by: 'region' is not one of"):
            of.open_backorders(conn, "region")


def test_aging_buckets_and_revenue_at_risk(engine: Engine) -> None:
    seed_waiting(engine)
    with engine.connect() as conn:
        assert of.aging(conn, TODAY) == [
            {"bucket": "0-2", "lines": 2, "units": 8, "value": 230.0},
            {"bucket": "3-7", "lines": 1, "units": 2, "value": 10.0},
            {"bucket": "8-14", "lines": 2, "units": 4, "value": 307.5},
            {"bucket": "15-30", "lines": 0, "units": 0, "value": 0.0},
            {"bucket": "30+", "lines": 1, "units": 4, "value": 20.0},
        ]
        assert of.revenue_at_risk(conn) == 567.5
        assert of.totals(conn) == {"lines": 6, "units": 18, "value": 567.5}


def test_figures_of_an_empty_store(engine: Engine) -> None:
    with engine.connect() as conn:
        assert of.open_backorders(conn, "sku") == []
        assert [b["lines"] for b in of.aging(conn, TODAY)] == [0, 0, 0, 0, 0]
        assert of.revenue_at_risk(conn) == 0.0


def seed_inbound(engine: Engine) -> None:
    """PO-1 (due in 3 days) covers L1 and L3 (sku A); PO-2 (overdue) covers L2; PO-3 has nothing open."""
    with engine.begin() as conn:
        conn.execute(insert(t.purchase_orders), [
            {"po_id": "PO-1", "supplier_id": "S1", "warehouse_id": "W-EU", "expected_at": TODAY + timedelta(days=3)},
            {"po_id": "PO-2", "supplier_id": "S2", "warehouse_id": "W-US", "expected_at": TODAY - timedelta(days=1)},
            {"po_id": "PO-3", "supplier_id": "S2", "warehouse_id": "W-US", "expected_at": TODAY},
            {"po_id": "PO-4", "supplier_id": "S1", "warehouse_id": "W-EU", "expected_at": None},
        ])
        conn.execute(insert(t.po_lines), [
            {"po_id": "PO-1", "sku": "A", "qty": 20, "received": 0},
            {"po_id": "PO-1", "sku": "C", "qty": 5, "received": 2},
            {"po_id": "PO-2", "sku": "B", "qty": 4, "received": 0},
            {"po_id": "PO-3", "sku": "B", "qty": 4, "received": 4},
            {"po_id": "PO-4", "sku": "A", "qty": 1, "received": 0},
        ])
        lines = t.order_lines
        for lid, reason, eta in (("L1", "po:PO-1", TODAY + timedelta(days=4)), ("L3", "po:PO-1", TODAY + timedelta(
                days=4)), ("L2", "po:PO-2", TODAY + timedelta(days=1)), ("L7", "po:PO-1", None)):
            conn.execute(lines.update().where(lines.c.line_id == lid).values(eta_reason=reason, eta=eta))


def test_next_inbound_pos_and_the_lines_they_cover(engine: Engine) -> None:
    seed_waiting(engine)
    seed_inbound(engine)
    with engine.connect() as conn:
        got = of.next_inbound(conn, TODAY, limit=5)
    assert [p["po_id"] for p in got] == ["PO-2", "PO-1", "PO-4"]  # PO-3 is fully received; undated last
    po2, po1, po4 = got
    assert (po2["overdue"], po2["units"], po2["covers_lines"], po2["covers_units"], po2["covers_value"]) == (
        True, 4, 1, 2, 200.0)
    # L7 names PO-1 but ships complete: not waiting, not covered.
    assert (po1["overdue"], po1["skus"], po1["units"], po1["covers_lines"], po1["covers_units"],
            po1["covers_value"]) == (False, 2, 23, 2, 8, 40.0)
    assert [(ln["line_id"], ln["waiting"], ln["customer_id"]) for ln in po1["lines"]] == [("L1", 6, "C1"),
                                                                                         ("L3", 2, "C2")]
    assert (po4["expected_at"], po4["covers_lines"], po4["lines"]) == (None, 0, [])


def test_fulfillment_fill_rate_and_per_day(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(t.customers).values(customer_id="C1", name="One"))
        conn.execute(insert(t.products).values(sku="A", name="A"))
        conn.execute(insert(t.orders), [
            {"order_id": "NEW", "customer_id": "C1", "placed_at": NOW - timedelta(days=1), "status": "open"},
            {"order_id": "OLD", "customer_id": "C1", "placed_at": NOW - timedelta(days=20), "status": "open"}])
        base = {"sku": "A", "unit_price": Decimal(1), "qty_shipped": 0, "backordered_at": None}
        conn.execute(insert(t.order_lines), [
            {**base, "order_id": "NEW", "line_id": "1", "qty": 10, "qty_allocated": 10, "status": "allocated",
             "backordered_at": NOW - timedelta(hours=20)},
            {**base, "order_id": "NEW", "line_id": "2", "qty": 10, "qty_allocated": 5,
             "status": "partially_allocated", "backordered_at": NOW - timedelta(days=1)},
            {**base, "order_id": "NEW", "line_id": "3", "qty": 4, "qty_allocated": 0, "status": "cancelled"},
            {**base, "order_id": "OLD", "line_id": "1", "qty": 7, "qty_allocated": 0, "status": "backordered",
             "backordered_at": NOW - timedelta(days=20)},
        ])
        conn.execute(insert(t.domain_events), [
            {"type": "backorder_resolved", "data": {}, "created_at": NOW - timedelta(hours=1)},
            {"type": "backorder_resolved", "data": {}, "created_at": NOW - timedelta(hours=2)},
            {"type": "backorder_resolved", "data": {}, "created_at": NOW - timedelta(days=2)},
            {"type": "backorder_resolved", "data": {}, "created_at": NOW - timedelta(days=3)},  # outside 3 days
            {"type": "line_allocated", "data": {}, "created_at": NOW},
        ])
    with engine.connect() as conn:
        f = of.fulfillment(conn, TODAY, days=3)
    # Orders placed in the window: NEW only; its cancelled line is left out: 15 of 20 units, 1 of 2 lines.
    assert (f["fill_rate"], f["line_fill_rate"], f["units_ordered"], f["units_allocated"]) == (0.75, 0.5, 20, 15)
    assert f["per_day"] == [
        {"day": "2026-02-28", "opened": 0, "resolved": 1},
        {"day": "2026-03-01", "opened": 2, "resolved": 0},
        {"day": "2026-03-02", "opened": 0, "resolved": 2},
    ]
    assert (f["resolved"], f["opened"]) == (3, 2)


def test_the_one_pass_summary_equals_the_figures_one_by_one(engine: Engine) -> None:
    seed_waiting(engine)
    with engine.connect() as conn:
        summary = of.waiting_summary(conn, TODAY)
        assert summary["totals"] == of.totals(conn)
        assert summary["aging"] == of.aging(conn, TODAY)
        assert summary["by"] == {by: of.open_backorders(conn, by) for by in of.GROUPINGS}


def test_snapshot_holds_the_queues_and_the_fingerprint_moves(engine: Engine) -> None:
    seed_waiting(engine)
    seed_inbound(engine)
    settings = Settings(database_url="sqlite://", dashboard={"top": 2})
    with engine.begin() as conn:
        before = ops_queues.fingerprint(conn)
        task = {"sku": None, "status": "open", "created_at": NOW, "owner": None, "due_at": None}
        conn.execute(insert(t.tasks), [
            {**task, "kind": "procurement_review", "sku": "A", "title": "late", "due_at": NOW - timedelta(hours=1),
             "owner": "pat"},
            {**task, "kind": "inventory_check", "sku": "B", "title": "count", "due_at": NOW + timedelta(hours=3)},
            {**task, "kind": "handoff", "title": "call"},
            {**task, "kind": "handoff", "title": "old", "status": "done"},
        ])
        conn.execute(insert(t.incidents), [
            {"kind": "overdue_backorder", "sku": "A", "severity": "high", "cause": "c", "mitigation": "m",
             "value": Decimal("12.5"), "status": "open", "opened_at": NOW},
            {"kind": "overdue_backorder", "sku": "B", "severity": "low", "cause": "c", "mitigation": "m",
             "value": Decimal("1"), "status": "closed", "opened_at": NOW}])
        conn.execute(insert(t.drafts), [
            {"idempotency_key": f"d{i}", "kind": "delay_notice", "notice_kind": "eta_changed", "mode": "approve",
             "channel": "email", "status": status, "created_at": NOW - timedelta(minutes=m),
             "updated_at": NOW, "expires_at": NOW + timedelta(days=1)}
            for i, (status, m) in enumerate((("pending", 90), ("pending", 5), ("rejected", 200)))])
        after = ops_queues.fingerprint(conn)
    assert after != before
    with engine.connect() as conn:
        snap = of.snapshot(conn, NOW, settings)
        assert ops_queues.fingerprint(conn) == after  # reading moves nothing
        by_sku = of.open_backorders(conn, "sku")
    assert (snap["totals"], snap["revenue_at_risk"]) == ({"lines": 6, "units": 18, "value": 567.5}, 567.5)
    assert snap["by"]["sku"] == {"keys": 3, "rows": by_sku[:2]}
    tasks = snap["tasks"]
    assert (tasks["open"], tasks["overdue"], tasks["taken"]) == (3, 1, 1)
    assert [i["title"] for i in tasks["items"]] == ["late", "count"]  # by due time, top 2
    assert tasks["by_kind"] == {"procurement_review": 1, "inventory_check": 1, "handoff": 1}
    assert (snap["incidents"]["open"], snap["incidents"]["value"], snap["incidents"]["by_severity"]) == (
        1, 12.5, {"high": 1})
    assert (snap["approvals"]["pending"], snap["approvals"]["oldest_minutes"]) == (2, 90)
    assert [p["po_id"] for p in snap["inbound"]] == ["PO-2", "PO-1", "PO-4"]
    assert snap["dead_letters"] == {"parked": 0, "value": 0.0}
    assert snap["notifications"]["messages"] == 0


def test_the_daily_ops_digest_counts_waiting_units_as_the_dashboard_does(engine: Engine) -> None:
    """L3 has 2 of its 3 allocated units shipped: qty_allocated already counts them, so 2 units still wait."""
    from services.digests import ops_figures as digest_figures

    seed_waiting(engine)
    with engine.connect() as conn:
        digest = digest_figures(conn, NOW, NOW - timedelta(hours=9), TODAY.isoformat())
        dashboard = of.totals(conn)
    assert (digest["open_lines"], digest["open_units"], digest["open_value"]) == (6, 18, 567.5)
    assert (dashboard["lines"], dashboard["units"], dashboard["value"]) == (6, 18, 567.5)
    assert {r["sku"]: r["units"] for r in digest["top_skus"]} == {"A": 12, "B": 5, "C": 1}
