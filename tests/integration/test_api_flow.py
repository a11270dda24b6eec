from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from bot.api import create_app
from services.context import Context


def ev(event_id: str, type_: str, data: dict[str, Any], at: str = "2026-03-01T10:00:00Z") -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": "test", "data": data}


def seed() -> list[dict[str, Any]]:
    return [
        ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
        ev("w2", "warehouse.upserted", {"warehouse_id": "BRS", "name": "Bristol", "region": "south"}),
        ev("s1", "supplier.upserted", {"supplier_id": "ACME", "name": "Acme", "lead_time_days": 10}),
        ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40,
                                      "supplier_id": "ACME", "lead_time_days": 14}),
        ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "tier": "gold", "region": "north",
                                       "timezone": "Europe/London", "locale": "en"}),
        ev("i1", "inventory.adjusted", {"sku": "KTL-200", "warehouse_id": "LDS", "on_hand": 3}),
    ]


def test_order_backordered_then_filled_by_receipt(ctx: Context) -> None:
    client = TestClient(create_app(ctx, background_applier=False))
    r = client.post("/events", json=seed())
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 6
    order = ev("o1", "order.placed", {"order_id": "1042", "customer_id": "C1", "placed_at": "2026-03-01T11:00:00Z",
                                      "promised_date": "2026-03-05",
                                      "lines": [{"line_id": "1", "sku": "KTL-200", "qty": 5, "unit_price": 40}]})
    assert client.post("/events", json=order).json()["results"][0]["status"] == "accepted"
    body = client.get("/orders/1042").json()
    line = body["lines"][0]
    assert (line["status"], line["qty_allocated"], line["allocations"]) == (
        "partially_allocated", 3, [{"warehouse_id": "LDS", "qty": 3}])
    assert line["eta"] == "2026-03-16"  # no PO: today (2026-03-02) + 14 days lead time
    assert client.post("/events", json=order).json()["results"][0]["status"] == "duplicate"
    po = ev("po1", "po.updated", {"po_id": "PO-1", "supplier_id": "ACME", "warehouse_id": "LDS",
                                  "expected_at": "2026-03-08", "lines": [{"sku": "KTL-200", "qty": 10}]})
    client.post("/events", json=po)
    assert client.get("/orders/1042").json()["lines"][0]["eta"] == "2026-03-09"
    backorders = client.get("/backorders", params={"sku": "KTL-200"}).json()["backorders"]
    assert [(b["order_id"], b["qty_waiting"], b["value"]) for b in backorders] == [("1042", 2, 80.0)]
    client.post("/events", json=ev("r1", "inventory.received",
                                   {"sku": "KTL-200", "warehouse_id": "LDS", "qty": 2, "po_id": "PO-1"}))
    line = client.get("/orders/1042").json()["lines"][0]
    assert (line["status"], line["qty_allocated"], line["eta"]) == ("allocated", 5, None)
    sku = client.get("/skus/KTL-200").json()
    assert (sku["on_hand"], sku["allocated"], sku["available"]) == (5, 5, 0)
    assert sku["inbound"][0]["open"] == 8
    client.post("/events", json=ev("sh1", "shipment.updated", {"order_id": "1042", "carrier": "DPD",
                                                                "tracking": "X1"}))
    client.post("/events", json=ev("sh2", "shipment.updated", {"order_id": "1042", "status": "delivered"}))
    line = client.get("/orders/1042").json()["lines"][0]
    assert (line["status"], line["qty_shipped"]) == ("shipped", 5)
    sku = client.get("/skus/KTL-200").json()
    assert (sku["on_hand"], sku["allocated"]) == (0, 0)
    assert client.get("/orders/nope").status_code == 404


def test_openapi_documents_the_events_body_and_the_schema_is_served(ctx: Context) -> None:
    from intake.envelope import event_json_schema

    client = TestClient(create_app(ctx, background_applier=False))
    body = client.get("/openapi.json").json()["paths"]["/events"]["post"]["requestBody"]
    assert body["required"] is True
    assert "/schemas/events.json" in body["content"]["application/json"]["schema"]["description"]
    assert client.get("/schemas/events.json").json() == event_json_schema()
