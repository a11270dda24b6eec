"""A hand-built three weeks of backorders for the weekly report's tests, posted through POST /events
with the settable clock at each event's time (so decisions are stamped when they happened).

Week 2026-W08 (Feb 16-22) and W09 (Feb 23 - Mar 1); the report is built on Monday 2026-03-02 09:00 UTC
for W09. What the figures must be is worked out beside each step (EXPECTED at the bottom).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from bot.api import create_app
from services.context import Context
from services.tasks import open_task
from store import allocation_io as io
from store.db import unit_of_work
from tests.invariants import post_events

REPORT_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _at(day: int, hour: int, month: int = 2) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def ev(eid: str, type_: str, data: dict[str, Any], when: datetime) -> dict[str, Any]:
    return {"event_id": eid, "type": type_, "occurred_at": when.isoformat().replace("+00:00", "Z"),
            "source": "test", "data": data}


def order(oid: str, cid: str, lines: list[tuple[str, int, float]], when: datetime,
          promised: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"order_id": oid, "customer_id": cid, "placed_at": when.isoformat(),
                            "lines": [{"line_id": str(i + 1), "sku": s, "qty": q, "unit_price": p}
                                      for i, (s, q, p) in enumerate(lines)]}
    if promised:
        data["promised_date"] = promised
    return ev(f"o-{oid}", "order.placed", data, when)


class Scenario:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.clock: Any = ctx.clock
        self.client = TestClient(create_app(ctx, background_applier=False))

    def post(self, when: datetime, *events: dict[str, Any]) -> None:
        self.clock.now = when
        post_events(self.client, list(events), self.ctx.engine)

    def run(self) -> None:
        t0 = _at(9, 8)
        self.post(t0,
                  ev("wh1", "warehouse.upserted", {"warehouse_id": "WH1", "name": "North 1", "region": "north"}, t0),
                  ev("wh2", "warehouse.upserted", {"warehouse_id": "WH2", "name": "North 2", "region": "north"}, t0),
                  ev("s1", "supplier.upserted", {"supplier_id": "SUP1", "name": "Acme", "lead_time_days": 7}, t0),
                  ev("s2", "supplier.upserted", {"supplier_id": "SUP2", "name": "Bolt", "lead_time_days": 9}, t0),
                  *[ev(f"p-{sku}", "product.upserted", {"sku": sku, "name": name, "price": price,
                                                        "supplier_id": sup}, t0)
                    for sku, name, price, sup in (("A", "Anvil", 10, "SUP1"), ("B", "Bolt cutter", 20, "SUP2"),
                                                  ("C", "Chain", 5, "SUP1"))],
                  ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Corner Shop"}, t0),
                  ev("c2", "customer.upserted", {"customer_id": "C2", "name": "Depot <Two>"}, t0),
                  ev("adj-c", "inventory.adjusted", {"sku": "C", "warehouse_id": "WH1", "on_hand": 100}, t0))
        # P2: B from Bolt, due Feb 20, never arrives: open and overdue. Heard of before B ran short.
        self.post(_at(10, 9), ev("po-p2", "po.updated", {
            "po_id": "P2", "supplier_id": "SUP2", "warehouse_id": "WH1", "expected_at": "2026-02-20",
            "lines": [{"sku": "B", "qty": 5}]}, _at(10, 9)))
        # W08: O1 waits for A (promised Feb 19); P1 for A is placed the next day (shortage -> request in W08).
        self.post(_at(16, 10), order("O1", "C1", [("A", 5, 10)], _at(16, 10), promised="2026-02-19"))
        self.post(_at(17, 10), ev("po-p1", "po.updated", {
            "po_id": "P1", "supplier_id": "SUP1", "warehouse_id": "WH1", "expected_at": "2026-02-24",
            "lines": [{"sku": "A", "qty": 10}]}, _at(17, 10)))
        # W09: B runs short (O2 at 09:00; O3 and O5 wait behind it); C fills at once.
        self.post(_at(23, 9), order("O2", "C2", [("B", 4, 20), ("C", 2, 5)], _at(23, 9), promised="2026-02-25"))
        self.post(_at(23, 12), order("O3", "C1", [("B", 3, 20)], _at(23, 12), promised="2026-02-26"))
        self.post(_at(24, 8), order("O5", "C2", [("B", 1, 20)], _at(24, 8)))
        # A procurement review for B a day after it ran short (the overdue workflow opens these).
        self.clock.now = _at(24, 9)
        with unit_of_work(self.ctx.engine) as conn:
            open_task(conn, self.ctx, "procurement_review", sku="B", title="B is short", detail={}, cause="test:b")
            # A staff member's manual action on O3's line (what a chat command records).
            io.write_audit(conn, [{"entity": "order_line", "entity_id": "O3/1", "action": "note", "before": None,
                                   "after": {"note": "called the customer"}}], "chat:ann", "test:note", _at(24, 9))
        # P1 arrives a day late: O1 is allocated (9 days after it waited).
        self.post(_at(25, 10), ev("r-a", "inventory.received", {"sku": "A", "warehouse_id": "WH1", "qty": 10,
                                                                "po_id": "P1"}, _at(25, 10)))
        # B arrives in two warehouses: O2 takes 3 from WH1, then its last unit from WH2 (resolved Feb 26 11:00).
        self.post(_at(26, 10), ev("r-b1", "inventory.received", {"sku": "B", "warehouse_id": "WH1", "qty": 3},
                                  _at(26, 10)))
        self.post(_at(26, 11), ev("r-b2", "inventory.received", {"sku": "B", "warehouse_id": "WH2", "qty": 1},
                                  _at(26, 11)))
        self.post(_at(27, 10), ev("sh-o2", "shipment.updated", {"order_id": "O2", "status": "shipped"}, _at(27, 10)))
        self.post(_at(27, 11), ev("sh-o1", "shipment.updated", {"order_id": "O1", "status": "shipped"}, _at(27, 11)))
        self.post(_at(28, 9), order("O4", "C2", [("A", 2, 10)], _at(28, 9)))
        self.post(_at(28, 10), ev("x-o5", "order.cancelled", {"order_id": "O5"}, _at(28, 10)))
        self.clock.now = REPORT_AT


# What the W09 report must say (hours and days as the figures round them).
EXPECTED = {
    "this_week": {"opened": 3, "resolved": 2, "closed_unresolved": 1, "lines_placed": 5, "filled_at_once": 2,
                  "fill_rate": 0.4},
    "last_week": {"opened": 1, "resolved": 0, "lines_placed": 1, "filled_at_once": 0},
    # A: O1 promised Feb 19, allocated Feb 25 10:00 = 6.4 days; B: O2 1.5 (Feb 25 -> Feb 26 11:00), O3 4.0 (waits).
    "top_skus": [("A", 1, 6.4), ("B", 2, 5.5)],
    "top_suppliers": [("SUP1", 1, 6.4), ("SUP2", 2, 5.5)],
    # O1 216 h, O2 74 h; shipped: O2/B 23 h after allocation, O1 49 h.
    "to_allocated": {"count": 2, "mean": 145.0, "median": 145.0},
    "to_shipped": {"count": 2, "mean": 36.0, "median": 36.0},
    "backordered_to_shipped": {"count": 2, "mean": 181.0},
    "shortage": {"skus_short": 1, "with_request": 1, "median": 24.0},
    "split": {"lines_shipped": 3, "split": 1},
    "manual_actions": 1,
    "suppliers": {"SUP1": {"pos_arrived": 1, "on_time": 0, "avg_days_late": 1.4, "open_overdue": 0},
                  "SUP2": {"pos_arrived": 0, "open_overdue": 1}},
    "customers": [("C1", 2, 60.0), ("C2", 2, 0.0)],
    "revenue_at_risk": 60.0,
}
