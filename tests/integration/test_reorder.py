"""Reorder suggestions on both stores: services.reorder.check() from demand and stock, transfers before
purchases, decisions over HTTP (POST /tasks/{id}/approve, /reject) and the signed `po.requested` /
`transfer.requested` webhook an approval sends through the outbox to a fake ERP receiver."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fakes.webhook_receiver import WebhookReceiver
from fastapi.testclient import TestClient
from sqlalchemy import select

from backorder.config import load_settings
from bot.api import create_app
from services import reorder, suggestions
from services.context import Context
from services.inbox import drain, store_events
from services.tasks import open_task
from services.worker import drain_outbox
from store import tables as t
from store.db import unit_of_work

SECRET = "whsec-erp"
STAFF = {"pat": {"roles": ["procurement"]}, "wm": {"roles": ["warehouse_manager"]}, "olga": {"roles": ["ops"]},
         "cs": {"roles": ["customer_service"]}}


def ev(event_id: str, type_: str, data: dict[str, Any], at: str = "2026-03-01T10:00:00Z") -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": "test", "data": data}


CATALOG = [
    ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
    ev("w2", "warehouse.upserted", {"warehouse_id": "LON", "name": "London", "region": "south"}),
    ev("s1", "supplier.upserted", {"supplier_id": "ACME", "name": "Acme", "lead_time_days": 10}),
    ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40, "supplier_id": "ACME"}),
    ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "region": "north"}),
]


def stock(event_id: str, warehouse: str, on_hand: int) -> dict[str, Any]:
    return ev(event_id, "inventory.adjusted", {"sku": "KTL-200", "warehouse_id": warehouse, "on_hand": on_hand})


ORDER = ev("o1", "order.placed", {"order_id": "1042", "customer_id": "C1",
                                  "lines": [{"line_id": "1", "sku": "KTL-200", "qty": 10, "unit_price": 40}]})


def configured(ctx: Context, **overrides: Any) -> Context:
    overrides.setdefault("staff", {"members": STAFF})
    notify = {"rules": {"ops_digest": {"enabled": False}}}
    return Context(engine=ctx.engine, settings=load_settings(database_url=ctx.settings.database_url, notify=notify,
                                                             **overrides), clock=ctx.clock)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as rx:
        yield rx


def apply(ctx: Context, events: list[dict[str, Any]]) -> None:
    _, ids = store_events(ctx, events)
    drain(ctx, ids)


def tasks(ctx: Context, **where: Any) -> list[Any]:
    tk = t.tasks
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(tk).where(tk.c.kind.in_(reorder.KINDS), *(tk.c[k] == v for k, v in
                                                                                     where.items()))
                                 .order_by(tk.c.id)).mappings())


def outbox(ctx: Context, **where: Any) -> list[Any]:
    o = t.outbox
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(o).where(*(o.c[k] == v for k, v in where.items())).order_by(o.c.id))
                    .mappings())


def audits(ctx: Context, action: str) -> list[Any]:
    a = t.audit_log
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(a).where(a.c.action == action)).mappings())


TRANSFER_SETUP = {"overrides": {"KTL-200": {"reorder_point": 10, "reorder_qty": 20}}}


def transfer_case(ctx: Context, **reorder_cfg: Any) -> Context:
    """Leeds holds 3 (its point is 10), London 100: surplus 90 over its own point."""
    ctx = configured(ctx, reorder={**TRANSFER_SETUP, **reorder_cfg})
    apply(ctx, [*CATALOG, stock("a1", "LDS", 3), stock("a2", "LON", 100)])
    return ctx


def test_demand_and_waiting_units_open_a_purchase_suggestion_for_procurement(ctx: Context) -> None:
    ctx = configured(ctx)
    apply(ctx, [*CATALOG, stock("a1", "LDS", 2), stock("a2", "LON", 0), ORDER])
    report = reorder.check(ctx)
    [task] = tasks(ctx)
    # 10 units ordered in 28 days, cover 10 (ACME's lead time) + 7 safety days: point ceil(10 * 17 / 28) = 7.
    # Leeds: 2 on hand, 2 allocated, 8 waiting -> projected -8; it wants max(7, 7 - -8) = 15.
    assert (task["kind"], task["sku"], task["status"]) == ("purchase_suggestion", "KTL-200", "open")
    assert task["detail"] == {"qty": 15, "supplier_id": "ACME", "warehouse_id": "LDS", "expected_at": "2026-03-12",
                              "projected": -8, "reorder_point": 7, "lead_time_days": 10,
                              "demand_per_day": round(10 / 28, 3)}
    assert report.as_dict()["opened"] == 1 and report.skus == 1 and report.positions == 2
    [notice] = outbox(ctx, kind="purchase_suggestion")
    assert (notice["role"], notice["audience"], notice["channel"]) == ("procurement", "staff", "console")
    assert "buy 15 × KTL-200 for LDS from ACME" in notice["body"]
    # A second run finds it open: nothing new.
    again = reorder.check(ctx)
    assert again.opened == [] and again.already_open == 1 and len(tasks(ctx)) == 1


def test_inbound_po_within_the_lead_time_counts_a_later_one_does_not(ctx: Context) -> None:
    ctx = configured(ctx)
    apply(ctx, [*CATALOG, stock("a1", "LDS", 2), stock("a2", "LON", 0), ORDER])
    late = ev("po1", "po.updated", {"po_id": "PO-1", "supplier_id": "ACME", "warehouse_id": "LDS",
                                    "expected_at": "2026-04-30", "lines": [{"sku": "KTL-200", "qty": 30}]})
    apply(ctx, [late])
    assert [x["kind"] for x in tasks(ctx)] == [] and len(reorder.check(ctx).opened) == 1
    with unit_of_work(ctx.engine) as conn:
        conn.execute(t.tasks.delete())
    soon = ev("po2", "po.updated", {"po_id": "PO-2", "supplier_id": "ACME", "warehouse_id": "LDS",
                                    "expected_at": "2026-03-09", "lines": [{"sku": "KTL-200", "qty": 20}]})
    apply(ctx, [soon])
    # -8 + 20 due within 10 days = 12, above the point of 7.
    assert reorder.check(ctx).opened == [] and tasks(ctx) == []


def test_a_transfer_is_preferred_when_another_warehouse_has_surplus(ctx: Context) -> None:
    ctx = transfer_case(ctx)
    reorder.check(ctx)
    [task] = tasks(ctx)
    assert task["kind"] == "transfer_suggestion"
    assert task["detail"]["qty"] == 20 and task["detail"]["from_warehouse_id"] == "LON"
    assert task["detail"]["to_warehouse_id"] == "LDS" and task["detail"]["expected_at"] == "2026-03-04"
    [notice] = outbox(ctx, kind="transfer_suggestion")
    assert notice["role"] == "warehouse_manager"


def test_transfer_first_off_buys_instead(ctx: Context) -> None:
    ctx = transfer_case(ctx, transfer_first=False)
    reorder.check(ctx)
    [task] = tasks(ctx)
    assert task["kind"] == "purchase_suggestion" and task["detail"]["qty"] == 20
    assert task["detail"]["expected_at"] == "2026-03-12"


def test_disabled_opens_nothing(ctx: Context) -> None:
    ctx = transfer_case(ctx, enabled=False)
    assert reorder.check(ctx).as_dict()["opened"] == 0 and tasks(ctx) == []


def test_approval_sends_one_signed_webhook_and_later_clicks_hear_the_outcome(ctx: Context,
                                                                              receiver: WebhookReceiver) -> None:
    ctx = configured(ctx, webhook={"url": receiver.url, "secret": SECRET, "allow_http": True, "allow_private": True,
                                   "endpoints": [{"url": receiver.url.replace("/webhook", "/other"),
                                                  "events": ["line_shipped"]}]})
    apply(ctx, [*CATALOG, stock("a1", "LDS", 2), stock("a2", "LON", 0), ORDER])
    reorder.check(ctx)
    [task] = tasks(ctx)
    client = TestClient(create_app(ctx, background_applier=False))
    assert client.post(f"/tasks/{task['id']}/approve", json={"staff_id": "wm"}).status_code == 403
    r = client.post(f"/tasks/{task['id']}/approve", json={"staff_id": "pat"})
    assert r.status_code == 200, r.text
    assert (r.json()["outcome"], r.json()["status"], r.json()["closed_by"]) == ("approved", "done", "pat")
    late = client.post(f"/tasks/{task['id']}/reject", json={"staff_id": "olga"})
    assert late.status_code == 409 and late.json()["detail"].startswith("already approved by pat at ")
    assert client.post(f"/tasks/{task['id']}/approve", json={"staff_id": "pat"}).status_code == 409

    asyncio.run(drain_outbox(ctx))
    # Exactly one po.requested (the order's own decisions went out as `decision`; the second endpoint takes
    # only line_shipped).
    [got] = [r for r in receiver.requests if r.headers["X-Backorder-Event"] != "decision"]
    assert got.signature_ok and got.headers["X-Backorder-Event"] == "po.requested"
    body = got.json()
    assert (body["type"], body["cause"]) == ("po.requested", f"task:{task['id']}")
    assert body["data"] == {"task_id": task["id"], "sku": "KTL-200", "qty": 15, "supplier_id": "ACME",
                            "warehouse_id": "LDS", "expected_at": "2026-03-12", "approved_by": "pat",
                            "approved_at": "2026-03-02T09:00:00+00:00"}
    [row] = outbox(ctx, kind="po.requested")
    assert row["status"] == "delivered" and row["idempotency_key"] == got.key == body["id"]
    [audit] = audits(ctx, "suggestion_approved")
    assert audit["actor"] == "pat" and audit["after"]["via"] == "api" and audit["after"]["webhooks"] == 1
    # Approved and on its way: the next check counts it as inbound and suggests nothing.
    assert reorder.check(ctx).opened == []


def test_reject_sends_nothing_and_quiets_that_suggestion(ctx: Context, receiver: WebhookReceiver) -> None:
    ctx = transfer_case(ctx)
    ctx = configured(ctx, reorder=TRANSFER_SETUP,
                     webhook={"url": receiver.url, "secret": SECRET, "allow_http": True, "allow_private": True})
    reorder.check(ctx)
    [task] = tasks(ctx)
    client = TestClient(create_app(ctx, background_applier=False))
    assert client.post(f"/tasks/{task['id']}/reject", json={"staff_id": "pat"}).status_code == 403
    assert client.post(f"/tasks/{task['id']}/reject", json={"staff_id": "nobody"}).status_code == 422
    assert client.post(f"/tasks/{task['id']}/reject", json={}).status_code == 422
    r = client.post(f"/tasks/{task['id']}/reject", json={"staff_id": "wm"})
    assert r.status_code == 200 and r.json()["outcome"] == "rejected"
    asyncio.run(drain_outbox(ctx))
    assert [r for r in receiver.requests if r.headers["X-Backorder-Event"] != "decision"] == []
    assert outbox(ctx, kind="transfer.requested") == [] and outbox(ctx, kind="po.requested") == []
    assert len(audits(ctx, "suggestion_rejected")) == 1
    # The transfer stays quiet for rejected_quiet_days; Leeds is still short, so it is bought instead.
    reorder.check(ctx)
    [_, bought] = tasks(ctx)
    assert bought["kind"] == "purchase_suggestion" and bought["detail"]["warehouse_id"] == "LDS"


def test_not_a_suggestion_or_no_task_is_404(ctx: Context) -> None:
    ctx = configured(ctx)
    apply(ctx, CATALOG)
    with unit_of_work(ctx.engine) as conn:
        other = open_task(conn, ctx, "inventory_check", sku="KTL-200", title="Count KTL-200", detail={}, cause="t")
    client = TestClient(create_app(ctx, background_applier=False))
    assert client.post(f"/tasks/{other}/approve", json={"staff_id": "olga"}).status_code == 404
    assert client.post("/tasks/999999/reject", json={"staff_id": "olga"}).status_code == 404


def test_one_outcome_however_many_clicks_at_once(ctx: Context, receiver: WebhookReceiver) -> None:
    ctx = transfer_case(ctx)
    ctx = configured(ctx, reorder=TRANSFER_SETUP,
                     webhook={"url": receiver.url, "secret": SECRET, "allow_http": True, "allow_private": True})
    reorder.check(ctx)
    [task] = tasks(ctx)
    results: list[str] = []

    def click(outcome: str, staff: str) -> None:
        who = suggestions.Decider(staff, frozenset(STAFF[staff]["roles"]))
        try:
            suggestions.decide(ctx, task["id"], who, outcome, via="api")
            results.append(outcome)
        except suggestions.AlreadyDecided:
            results.append("late")

    threads = [threading.Thread(target=click, args=(o, s)) for o, s in
               [("approved", "wm"), ("rejected", "olga"), ("approved", "olga"), ("rejected", "wm")]]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results).count("late") == 3
    [decided] = tasks(ctx)
    assert decided["outcome"] in ("approved", "rejected") and decided["outcome"] in results
    hooks = outbox(ctx, kind="transfer.requested")
    assert len(hooks) == (1 if decided["outcome"] == "approved" else 0)
    assert len(audits(ctx, f"suggestion_{decided['outcome']}")) == 1
    if hooks:
        assert hooks[0]["payload"]["type"] == "transfer.requested"
        assert hooks[0]["payload"]["data"]["from_warehouse_id"] == "LON"
        assert hooks[0]["payload"]["data"]["to_warehouse_id"] == "LDS"
