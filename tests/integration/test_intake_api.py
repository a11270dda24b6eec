"""POST /events end to end: validation (422, nothing stored), idempotency, wait=false, auth,
dead letters and their automatic retry, stale counts, and the OpenAPI document.

Every test runs on SQLite and on PostgreSQL (the `ctx` fixture).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backorder.config import load_settings
from bot.api import create_app
from services.context import Context
from services.deadletters import list_dead_letters
from store import tables as t

T = "2026-03-01T10:00:00Z"


def ev(event_id: str, type_: str, data: dict[str, Any], at: str = T, source: str = "test") -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": source, "data": data}


def warehouse(wh: str = "LDS", region: str = "north", eid: str | None = None) -> dict[str, Any]:
    return ev(eid or f"wh-{wh}", "warehouse.upserted", {"warehouse_id": wh, "name": wh, "region": region})


def product(sku: str = "KTL", price: int = 40, eid: str | None = None) -> dict[str, Any]:
    return ev(eid or f"p-{sku}", "product.upserted", {"sku": sku, "name": sku, "price": price,
                                                       "lead_time_days": 14})


def customer(cid: str = "C1", region: str = "north", eid: str | None = None) -> dict[str, Any]:
    return ev(eid or f"c-{cid}", "customer.upserted", {"customer_id": cid, "name": cid, "region": region})


def adjust(sku: str, wh: str, on_hand: int, at: str = T, eid: str | None = None) -> dict[str, Any]:
    return ev(eid or f"adj-{sku}-{wh}-{at}", "inventory.adjusted",
              {"sku": sku, "warehouse_id": wh, "on_hand": on_hand}, at=at)


def receipt(sku: str, wh: str, qty: int, eid: str) -> dict[str, Any]:
    return ev(eid, "inventory.received", {"sku": sku, "warehouse_id": wh, "qty": qty})


def order(order_id: str, customer_id: str = "C1", lines: list[tuple[str, int]] | None = None,
          price: int = 40, placed_at: str = "2026-03-01T11:00:00Z") -> dict[str, Any]:
    lines = lines or [("KTL", 1)]
    return ev(f"o-{order_id}", "order.placed", {
        "order_id": order_id, "customer_id": customer_id, "placed_at": placed_at,
        "lines": [{"line_id": str(i + 1), "sku": sku, "qty": qty, "unit_price": price}
                  for i, (sku, qty) in enumerate(lines)]})


def seed() -> list[dict[str, Any]]:
    return [warehouse(), product(), customer(), adjust("KTL", "LDS", 3)]


def count(ctx: Context, table: Any) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def inbox_status(ctx: Context, event_id: str, source: str = "test") -> tuple[str, str | None]:
    i = t.inbox
    with ctx.engine.connect() as conn:
        row = conn.execute(select(i.c.status, i.c.note).where(i.c.source == source, i.c.event_id == event_id)).one()
    return row.status, row.note


def client_for(ctx: Context) -> TestClient:
    return TestClient(create_app(ctx, background_applier=False))


def post_ok(client: TestClient, body: Any, **params: Any) -> dict[str, Any]:
    r = client.post("/events", json=body, params=params)
    assert r.status_code == 200, r.text
    return r.json()


# --- 422: schema-invalid input, nothing of the request is stored -------------------------------


def test_invalid_json_is_422_and_stores_nothing(ctx: Context) -> None:
    client = client_for(ctx)
    r = client.post("/events", content=b'{"event_id": "x", ', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == "body" and err["msg"]
    assert count(ctx, t.inbox) == 0


def test_missing_fields_are_422_with_location_and_reason(ctx: Context) -> None:
    client = client_for(ctx)
    r = client.post("/events", json={"event_id": "e1", "type": "order.placed", "source": "test",
                                     "data": {"order_id": "1", "lines": [{"line_id": "1", "sku": "KTL"}]}})
    assert r.status_code == 422
    errors = {e["loc"]: e for e in r.json()["detail"]}
    assert {"[0].occurred_at", "[0].data.customer_id", "[0].data.lines.0.qty"} <= set(errors)
    assert all(e["msg"] and e["type"] for e in errors.values())
    assert errors["[0].occurred_at"]["type"] == "missing"
    assert count(ctx, t.inbox) == 0


def test_batch_with_several_bad_events_reports_each_and_stores_none(ctx: Context) -> None:
    client = client_for(ctx)
    bad_qty = order("1")
    bad_qty["data"]["lines"][0]["qty"] = 0
    bad_type = ev("x1", "order.teleported", {})
    naive_time = customer(eid="c-naive")
    naive_time["occurred_at"] = "2026-03-01T10:00:00"
    body = [*seed(), bad_qty, bad_type, naive_time, product("OK2")]
    r = client.post("/events", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    locs = [e["loc"] for e in detail]
    assert "[4].data.lines.0.qty" in locs
    assert "[5].type" in locs
    assert "[6].occurred_at" in locs
    assert not any(loc.startswith(("[0]", "[1]", "[2]", "[3]", "[7]")) for loc in locs)
    for e in detail:
        assert isinstance(e["loc"], str) and e["loc"]
        assert isinstance(e["msg"], str) and e["msg"]
    assert count(ctx, t.inbox) == 0
    assert count(ctx, t.products) == 0


def test_more_than_10000_events_is_422_and_stores_nothing(ctx: Context) -> None:
    client = client_for(ctx)
    body = [product(f"S{i}") for i in range(10_001)]
    r = client.post("/events", json=body)
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == "body" and "10000" in err["msg"].replace(",", "")
    assert count(ctx, t.inbox) == 0


def test_empty_array_and_scalar_body_are_422(ctx: Context) -> None:
    client = client_for(ctx)
    assert client.post("/events", json=[]).status_code == 422
    assert client.post("/events", json=42).status_code == 422
    assert count(ctx, t.inbox) == 0


# --- idempotency -------------------------------------------------------------------------------


def test_replay_is_duplicate_and_changes_nothing(ctx: Context) -> None:
    client = client_for(ctx)
    batch = [*seed(), order("1042", lines=[("KTL", 5)])]
    first = post_ok(client, batch)
    assert (first["accepted"], first["duplicate"]) == (5, 0)
    before = client.get("/orders/1042").json()
    sku_before = client.get("/skus/KTL").json()
    audit_before, events_before = count(ctx, t.audit_log), count(ctx, t.domain_events)
    again = post_ok(client, batch)
    assert (again["accepted"], again["duplicate"]) == (0, 5)
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 5
    assert client.get("/orders/1042").json() == before
    assert client.get("/skus/KTL").json() == sku_before
    assert (count(ctx, t.inbox), count(ctx, t.audit_log), count(ctx, t.domain_events)) == (
        5, audit_before, events_before)


def test_repeat_inside_one_batch_is_duplicate_and_source_is_part_of_the_key(ctx: Context) -> None:
    client = client_for(ctx)
    post_ok(client, seed())
    r1 = receipt("KTL", "LDS", 2, "r1")
    other_source = receipt("KTL", "LDS", 5, "r1")
    other_source["source"] = "erp"
    body = post_ok(client, [r1, r1, other_source])
    assert [(x["source"], x["status"]) for x in body["results"]] == [
        ("test", "accepted"), ("test", "duplicate"), ("erp", "accepted")]
    assert client.get("/skus/KTL").json()["on_hand"] == 3 + 2 + 5


# --- wait=false: stored now, applied in the background in received order -----------------------


def _poll(client: TestClient, path: str, ok: Any, timeout_s: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        r = client.get(path)
        last = r
        if r.status_code == 200 and ok(r.json()):
            return r.json()
        time.sleep(0.05)
    raise AssertionError(f"{path} never satisfied the condition; last: {last.status_code} {last.text}")


def test_wait_false_answers_202_then_applies_in_background(ctx: Context) -> None:
    app = create_app(ctx, background_applier=True)
    with TestClient(app) as client:
        r = client.post("/events", json=[*seed(), order("1", lines=[("KTL", 5)])], params={"wait": "false"})
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["applied"] is False and body["accepted"] == 5
        assert [x["status"] for x in body["results"]] == ["accepted"] * 5
        line = _poll(client, "/orders/1", lambda o: True)["lines"][0]
        assert (line["status"], line["qty_allocated"]) == ("partially_allocated", 3)
        # Order received matters: the receipt comes after the cancel of order 1, so order 2 gets all 5.
        r = client.post("/events", json=[
            order("2", lines=[("KTL", 5)], placed_at="2026-03-01T12:00:00Z"),
            ev("x1", "order.cancelled", {"order_id": "1"}),
            receipt("KTL", "LDS", 2, "r1"),
        ], params={"wait": "false"})
        assert r.status_code == 202
        o2 = _poll(client, "/orders/2", lambda o: o["lines"][0]["status"] == "allocated")
        assert o2["lines"][0]["allocations"] == [{"warehouse_id": "LDS", "qty": 5}]
        assert client.get("/orders/1").json()["lines"][0]["status"] == "cancelled"
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.inbox)
                            .where(t.inbox.c.status == "pending")).scalar_one() == 0


def test_default_response_comes_after_apply(ctx: Context) -> None:
    client = client_for(ctx)
    body = post_ok(client, [*seed(), order("1", lines=[("KTL", 2)])])
    assert body["applied"] is True
    assert client.get("/orders/1").json()["lines"][0]["status"] == "allocated"


# --- auth ------------------------------------------------------------------------------------------


def test_bearer_token_guards_every_endpoint_but_healthz(ctx: Context) -> None:
    settings = load_settings(database_url=ctx.settings.database_url, api_token="t")
    secured = Context(engine=ctx.engine, settings=settings, clock=ctx.clock)
    client = TestClient(create_app(secured, background_applier=False))
    reads = ["/orders/1", "/backorders", "/skus/KTL", "/tasks", "/incidents", "/openapi.json",
             "/schemas/events.json"]
    for path in reads:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Basic dDp0"}).status_code == 401, path
    r = client.post("/events", json=seed())
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.post("/events", json=seed(), headers={"Authorization": "Bearer tt"}).status_code == 401
    assert count(ctx, t.inbox) == 0
    good = {"Authorization": "Bearer t"}
    assert client.post("/events", json=[*seed(), order("1")], headers=good).status_code == 200
    for path in reads:
        assert client.get(path, headers=good).status_code == 200, path
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}


def test_no_token_configured_means_open(ctx: Context) -> None:
    client = client_for(ctx)
    assert client.get("/tasks").status_code == 200
    assert client.get("/incidents").status_code == 200


# --- dead letters --------------------------------------------------------------------------------


def test_order_for_unknown_customer_is_parked_then_applied_when_customer_arrives(ctx: Context) -> None:
    client = client_for(ctx)
    post_ok(client, [warehouse(), product(), adjust("KTL", "LDS", 3)])
    post_ok(client, order("1", customer_id="C9", lines=[("KTL", 2)]))
    assert client.get("/orders/1").status_code == 404
    assert inbox_status(ctx, "o-1") == ("parked", "unknown customer C9")
    with ctx.engine.connect() as conn:
        (dl,) = list_dead_letters(conn)
    assert (dl.reason, dl.missing, dl.impact_value, dl.type) == (
        "unknown customer C9", "customer C9", Decimal(80), "order.placed")
    post_ok(client, customer("C9"))
    line = client.get("/orders/1").json()["lines"][0]
    assert (line["status"], line["qty_allocated"]) == ("allocated", 2)
    assert inbox_status(ctx, "o-1")[0] == "applied"
    with ctx.engine.connect() as conn:
        assert list_dead_letters(conn) == []
        assert [d.status for d in list_dead_letters(conn, status=None)] == ["resolved"]


def test_order_for_unknown_sku_waits_for_every_missing_product(ctx: Context) -> None:
    client = client_for(ctx)
    post_ok(client, [warehouse(), customer(), product("A"), adjust("A", "LDS", 5)])
    post_ok(client, order("1", lines=[("A", 1), ("B", 1), ("C", 1)]))
    assert inbox_status(ctx, "o-1") == ("parked", "unknown SKU B, C")
    post_ok(client, product("B"))
    assert inbox_status(ctx, "o-1") == ("parked", "unknown SKU C")
    assert client.get("/orders/1").status_code == 404
    post_ok(client, product("C"))
    lines = client.get("/orders/1").json()["lines"]
    assert [(ln["sku"], ln["status"]) for ln in lines] == [
        ("A", "allocated"), ("B", "backordered"), ("C", "backordered")]
    with ctx.engine.connect() as conn:
        (dl,) = list_dead_letters(conn, status=None)
    assert (dl.status, dl.attempts) == ("resolved", 2)


def test_receipt_for_unknown_warehouse_is_parked_then_applied(ctx: Context) -> None:
    client = client_for(ctx)
    post_ok(client, [warehouse(), product(), customer(), order("1", lines=[("KTL", 4)])])
    post_ok(client, receipt("KTL", "BRS", 4, "r1"))
    assert inbox_status(ctx, "r1") == ("parked", "unknown warehouse BRS")
    assert client.get("/orders/1").json()["lines"][0]["status"] == "backordered"
    post_ok(client, warehouse("BRS", region="south"))
    line = client.get("/orders/1").json()["lines"][0]
    assert (line["status"], line["allocations"]) == ("allocated", [{"warehouse_id": "BRS", "qty": 4}])
    assert inbox_status(ctx, "r1")[0] == "applied"


def test_parked_event_is_kept_when_nothing_arrives(ctx: Context) -> None:
    client = client_for(ctx)
    post_ok(client, ev("sh1", "shipment.updated", {"order_id": "404"}))
    assert inbox_status(ctx, "sh1") == ("parked", "unknown order 404")
    assert count(ctx, t.dead_letters) == 1
    post_ok(client, [warehouse(), product()])  # unrelated arrivals do not drop it
    assert inbox_status(ctx, "sh1")[0] == "parked"


def test_dead_letters_are_listed_by_impact_value(ctx: Context) -> None:
    client = client_for(ctx)
    post_ok(client, [warehouse(), product()])
    post_ok(client, [
        order("small", customer_id="X1", lines=[("KTL", 1)], price=10),
        order("big", customer_id="X2", lines=[("KTL", 3)], price=100),
        order("mid", customer_id="X3", lines=[("KTL", 2)], price=40),
        receipt("KTL", "NOWHERE", 1, "r-nowhere"),
    ])
    with ctx.engine.connect() as conn:
        listed = list_dead_letters(conn)
    assert [(d.event_id, d.impact_value) for d in listed] == [
        ("o-big", Decimal(300)), ("o-mid", Decimal(80)), ("o-small", Decimal(10)), ("r-nowhere", Decimal(0))]


# --- out of order ----------------------------------------------------------------------------------


def test_stale_inventory_adjusted_is_recorded_and_ignored(ctx: Context) -> None:
    client = client_for(ctx)
    post_ok(client, [warehouse(), product(), adjust("KTL", "LDS", 10, at="2026-03-01T12:00:00Z")])
    body = post_ok(client, adjust("KTL", "LDS", 2, at="2026-03-01T11:00:00Z", eid="old-count"))
    assert body["results"][0]["status"] == "accepted"
    status, note = inbox_status(ctx, "old-count")
    assert status == "ignored" and note and "stale" in note
    assert client.get("/skus/KTL").json()["on_hand"] == 10
    post_ok(client, adjust("KTL", "LDS", 7, at="2026-03-01T12:30:00Z", eid="new-count"))
    assert inbox_status(ctx, "new-count")[0] == "applied"
    assert client.get("/skus/KTL").json()["on_hand"] == 7


def test_stale_check_compares_instants_across_utc_offsets(ctx: Context) -> None:
    """10:00+02:00 is 08:00Z, so a count at 09:00Z is the newer one and must apply."""
    client = client_for(ctx)
    post_ok(client, [warehouse(), product(), adjust("KTL", "LDS", 10, at="2026-03-01T10:00:00+02:00")])
    post_ok(client, adjust("KTL", "LDS", 4, at="2026-03-01T09:00:00Z", eid="later-in-utc"))
    assert inbox_status(ctx, "later-in-utc")[0] == "applied"
    assert client.get("/skus/KTL").json()["on_hand"] == 4
    post_ok(client, adjust("KTL", "LDS", 1, at="2026-03-01T09:30:00+01:00", eid="earlier"))  # 08:30Z
    assert inbox_status(ctx, "earlier")[0] == "ignored"
    assert client.get("/skus/KTL").json()["on_hand"] == 4


# --- reads and docs --------------------------------------------------------------------------------


def test_order_read_shape_and_404(ctx: Context) -> None:
    client = client_for(ctx)
    post_ok(client, [*seed(), order("1", lines=[("KTL", 5)])])
    body = client.get("/orders/1").json()
    (line,) = body["lines"]
    assert {"line_id", "sku", "qty", "qty_allocated", "qty_shipped", "status", "eta", "allocations"} <= set(line)
    assert line["status"] == "partially_allocated" and line["eta"] == "2026-03-16"
    assert client.get("/orders/missing").status_code == 404
    assert client.get("/skus/missing").status_code == 404


def test_backorders_filters(ctx: Context) -> None:
    client = client_for(ctx)
    post_ok(client, [
        warehouse(), warehouse("BRS", "south"), customer(), customer("C2", region="south"),
        ev("s-ACME", "supplier.upserted", {"supplier_id": "ACME", "name": "Acme", "lead_time_days": 5}),
        ev("p-A", "product.upserted", {"sku": "A", "name": "A", "price": 1, "supplier_id": "ACME"}),
        product("B"),
        order("1", "C1", [("A", 2)]), order("2", "C2", [("B", 3)]), order("3", "C2", [("A", 1)]),
    ])

    def ids(**params: str) -> list[str]:
        return sorted(b["order_id"] for b in client.get("/backorders", params=params).json()["backorders"])

    assert ids() == ["1", "2", "3"]
    assert ids(sku="A") == ["1", "3"]
    assert ids(customer_id="C2") == ["2", "3"]
    assert ids(supplier_id="ACME") == ["1", "3"]
    assert ids(warehouse_id="BRS") == ["2", "3"]
    assert ids(sku="A", customer_id="C1") == ["1"]


def test_openapi_json_is_served(ctx: Context) -> None:
    client = client_for(ctx)
    r = client.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert {"/events", "/orders/{order_id}", "/backorders", "/skus/{sku}", "/tasks", "/incidents",
            "/healthz"} <= set(paths)
