"""The demo's data set and story, as canonical events (the same public interface every source uses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any


@dataclass
class Chapter:
    title: str
    story: str
    events: list[dict[str, Any]] = field(default_factory=list)
    advance_days: int = 0  # move the demo clock forward before this chapter
    check_overdue: bool = False
    show_orders: list[str] = field(default_factory=list)
    approve_drafts: bool = False  # a person approves every draft waiting now (the first one edited)
    ops_view: bool = False  # the scheduled reorder check runs, then the lead's dashboard figures are shown


def _ev(n: int, type_: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": f"demo-{n:04d}", "type": type_, "occurred_at": at.isoformat(), "source": "demo",
            "data": data}


def story(start: datetime) -> list[Chapter]:
    """A week at a small homeware shop with two warehouses and one supplier who runs late."""
    n = iter(range(1, 10_000))
    d0: date = start.date()

    def at(hours: float = 0) -> datetime:
        return start + timedelta(hours=hours)

    def day(k: int) -> str:
        return (d0 + timedelta(days=k)).isoformat()

    setup = Chapter(
        "Day 1, 09:00: the catalogue and the shelves",
        "Two warehouses (Leeds in the north, Bristol in the south), two suppliers, four products, "
        "five customers. Leeds holds 6 blue kettles, Bristol 2; the toasters are down to 1.",
        [
            _ev(next(n), "warehouse.upserted", at(), {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
            _ev(next(n), "warehouse.upserted", at(), {"warehouse_id": "BRS", "name": "Bristol", "region": "south"}),
            _ev(next(n), "supplier.upserted", at(), {"supplier_id": "KETTLECO", "name": "KettleCo",
                                                     "lead_time_days": 21}),
            _ev(next(n), "supplier.upserted", at(), {"supplier_id": "BOLTWORKS", "name": "Boltworks",
                                                     "lead_time_days": 5}),
            _ev(next(n), "product.upserted", at(), {"sku": "KTL-200", "name": "Blue kettle 1.7l", "price": 39.0,
                                                    "supplier_id": "KETTLECO", "reorder_point": 5,
                                                    "substitutes": ["KTL-210"]}),
            _ev(next(n), "product.upserted", at(), {"sku": "KTL-210", "name": "Steel kettle 1.7l", "price": 42.0,
                                                    "supplier_id": "KETTLECO"}),
            _ev(next(n), "product.upserted", at(), {"sku": "TST-4", "name": "Four-slice toaster", "price": 65.0,
                                                    "supplier_id": "KETTLECO", "lead_time_days": 14}),
            _ev(next(n), "product.upserted", at(), {"sku": "BLT-5MM", "name": "5mm bolts (box of 100)",
                                                    "price": 6.5, "supplier_id": "BOLTWORKS"}),
            *[
                _ev(next(n), "customer.upserted", at(), {
                    "customer_id": cid, "name": name, "tier": tier, "region": region, "timezone": tz,
                    "locale": loc, "contacts": {"email": f"{cid.lower()}@example.com"}})
                for cid, name, tier, region, tz, loc in [
                    ("C-ADA", "Ada Lovelace", "platinum", "south", "Europe/London", "en"),
                    ("C-BEA", "Beatriz Ortega", "standard", "north", "Europe/Madrid", "es"),
                    ("C-CAL", "Caledonia Cafés", "gold", "north", "Europe/London", "en"),
                    ("C-DEV", "Devon Diner", "standard", "south", "Europe/London", "en"),
                    ("C-EMI", "Emil Berg", "standard", "north", "Europe/Stockholm", "en"),
                ]
            ],
            _ev(next(n), "inventory.adjusted", at(), {"sku": "KTL-200", "warehouse_id": "LDS", "on_hand": 6}),
            _ev(next(n), "inventory.adjusted", at(), {"sku": "KTL-200", "warehouse_id": "BRS", "on_hand": 2}),
            _ev(next(n), "inventory.adjusted", at(), {"sku": "TST-4", "warehouse_id": "LDS", "on_hand": 1}),
            _ev(next(n), "inventory.adjusted", at(), {"sku": "BLT-5MM", "warehouse_id": "LDS", "on_hand": 40}),
        ],
    )

    def order(oid: str, cust: str, hours: float, promised: int, lines: list[tuple[str, str, int, float]],
              **extra: Any) -> dict[str, Any]:
        return _ev(next(n), "order.placed", at(hours), {
            "order_id": oid, "customer_id": cust, "placed_at": at(hours).isoformat(), "promised_date": day(promised),
            "lines": [{"line_id": lid, "sku": sku, "qty": q, "unit_price": p} for lid, sku, q, p in lines], **extra})

    rush = Chapter(
        "Day 1, 10:00-12:00: the orders come in",
        "Five orders in two hours. Stock is shared first come, first served: Beatriz and the café get "
        "kettles from Leeds, Ada's come from Bristol (her region) and the rest is backordered.",
        [
            order("1041", "C-BEA", 1, 3, [("1", "KTL-200", 4, 39.0)]),
            order("1042", "C-ADA", 1.5, 3, [("1", "KTL-200", 3, 39.0), ("2", "TST-4", 1, 65.0)]),
            order("1043", "C-CAL", 2, 4, [("1", "KTL-200", 6, 37.0), ("2", "BLT-5MM", 10, 6.5)], rush=True),
            order("1044", "C-DEV", 2.5, 5, [("1", "TST-4", 2, 65.0)], ship_complete=True),
            order("1045", "C-EMI", 3, 5, [("1", "KTL-200", 2, 39.0)]),
        ],
        show_orders=["1041", "1042", "1043", "1044", "1045"],
    )
    approvals = Chapter(
        "Day 1, 12:30: a person signs the personal messages",
        "The café is a gold customer, so its backorder notice and the offer to ship what is ready now were "
        "drafted and held for approval, not sent. Sam, the approver, approves them from the queue (in Slack "
        "or Teams it is one click), adding a line of her own to the first; only then do they go out.",
        approve_drafts=True,
    )
    po = Chapter(
        "Day 1, 15:00: purchasing orders more",
        "KettleCo confirms PO-77: 12 kettles and 4 toasters into Leeds on day 5. Every waiting line now "
        "has a date: the PO is walked in allocation order, plus one day to receive it.",
        [
            _ev(next(n), "po.updated", at(6), {"po_id": "PO-77", "supplier_id": "KETTLECO", "warehouse_id": "LDS",
                                               "expected_at": day(4),
                                               "lines": [{"sku": "KTL-200", "qty": 12}, {"sku": "TST-4", "qty": 4}]}),
        ],
        show_orders=["1042", "1043", "1044", "1045"],
    )
    slip = Chapter(
        "Day 3: the supplier slips",
        "KettleCo moves PO-77 to day 10 and cuts the kettles to 8. The ETAs move with it, and the "
        "inventory clerk gets a task to check the changed quantity.",
        [
            _ev(next(n), "po.updated", at(48), {"po_id": "PO-77", "supplier_id": "KETTLECO",
                                                "warehouse_id": "LDS", "expected_at": day(9),
                                                "lines": [{"sku": "KTL-200", "qty": 8}, {"sku": "TST-4", "qty": 4}]}),
            _ev(next(n), "order.cancelled", at(49), {"order_id": "1045", "reason": "customer found one elsewhere"}),
        ],
        advance_days=2,
        show_orders=["1042", "1043", "1045"],
    )
    late = Chapter(
        "Day 6: promises broken",
        "Three days on, the overdue check finds lines past their promised date, rates them (Ada is "
        "platinum), opens one procurement review per SKU and records an incident with the new ETA.",
        advance_days=3,
        check_overdue=True,
    )
    arrival = Chapter(
        "Day 10: PO-77 arrives",
        "Eight kettles and four toasters are received in Leeds and go straight to the waiting lines, "
        "in order; Devon's ship-complete order can finally be filled in one go. Beatriz's order ships. Emil, "
        "back again, wants steel kettles, which nobody has: no PO, so his date comes from KettleCo's lead time.",
        [
            _ev(next(n), "inventory.received", at(9 * 24), {"sku": "KTL-200", "warehouse_id": "LDS", "qty": 8,
                                                           "po_id": "PO-77"}),
            _ev(next(n), "inventory.received", at(9 * 24), {"sku": "TST-4", "warehouse_id": "LDS", "qty": 4,
                                                           "po_id": "PO-77"}),
            _ev(next(n), "shipment.updated", at(9 * 24 + 2), {"order_id": "1041", "carrier": "DPD",
                                                             "tracking": "DPD-5521", "status": "shipped"}),
            order("1046", "C-EMI", 9 * 24 + 3, 12, [("1", "KTL-210", 2, 42.0)]),
        ],
        advance_days=4,
        show_orders=["1041", "1042", "1043", "1044", "1046"],
    )
    lead = Chapter(
        "Day 10, 18:00: the operations lead looks up",
        "The hourly reorder check compares each SKU's projected stock (on hand - allocated - waiting + "
        "inbound) with its reorder point and posts suggestions to procurement with Approve / Reject buttons; "
        "the dashboard shows what still waits, how old it is and what it is worth.",
        advance_days=0,
        ops_view=True,
    )
    return [setup, rush, approvals, po, slip, late, arrival, lead]
