"""The notification engine end to end on both stores: events in, messages out through real senders
(SMTP to an aiosmtpd server, webhooks to an HTTP receiver, the console to a buffer)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes.smtp_server import FakeSMTP
from fakes.webhook_receiver import WebhookReceiver
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import select

from backorder.config import load_settings
from bot.api import create_app
from services import digests
from services.context import Context
from services.inbox import drain, store_events
from services.worker import drain_outbox
from store import tables as t

SECRET = "whsec-test"


def ev(event_id: str, type_: str, data: dict[str, Any], at: str = "2026-03-02T08:59:00Z") -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": "test", "data": data}


def catalog(customer: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
        ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40, "lead_time_days": 14}),
        ev("p2", "product.upserted", {"sku": "MUG-1", "name": "Big mug", "price": 8}),
        ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "region": "north", **customer}),
    ]


def order(order_id: str, qty: int = 2, sku: str = "KTL-200", at: str = "2026-03-02T08:59:00Z") -> dict[str, Any]:
    return ev(f"o-{order_id}", "order.placed", {
        "order_id": order_id, "customer_id": "C1", "promised_date": "2026-03-05",
        "lines": [{"line_id": "1", "sku": sku, "qty": qty, "unit_price": 40}]}, at)


def receipt(event_id: str, qty: int, sku: str = "KTL-200") -> dict[str, Any]:
    return ev(event_id, "inventory.received", {"sku": sku, "warehouse_id": "LDS", "qty": qty})


def configured(ctx: Context, **overrides: Any) -> Context:
    """The test's settings; the daily ops digest is off unless a test turns it on (the clock is past 08:00)."""
    notify = {"rules": {"ops_digest": {"enabled": False}}}
    for key, value in overrides.pop("notify", {}).items():
        notify[key] = {**notify[key], **value} if key == "rules" else value
    return Context(engine=ctx.engine, settings=load_settings(database_url=ctx.settings.database_url,
                                                             notify=notify, **overrides), clock=ctx.clock)


@pytest.fixture
def ctx(ctx: Context) -> Context:
    return configured(ctx)


def apply(ctx: Context, events: list[dict[str, Any]]) -> list[str]:
    outcomes, ids = store_events(ctx, events)
    drain(ctx, ids)
    return outcomes


def send(ctx: Context, console: Console | None = None) -> int:
    return asyncio.run(drain_outbox(ctx, console))


def outbox_rows(ctx: Context, **where: Any) -> list[Any]:
    o = t.outbox
    q = select(o).order_by(o.c.id)
    for column, value in where.items():
        q = q.where(o.c[column] == value)
    with ctx.engine.connect() as conn:
        return list(conn.execute(q).all())


def buffer_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, force_terminal=False, color_system=None), out


@pytest.fixture
def smtp() -> Iterator[FakeSMTP]:
    with FakeSMTP() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as rx:
        yield rx


def email_settings(smtp: FakeSMTP) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": smtp.port, "starttls": False, "from_address": "alerts@shop.test"}


def test_backorder_email_over_http_once_even_when_the_events_are_replayed(ctx: Context, smtp: FakeSMTP) -> None:
    ctx = configured(ctx, email=email_settings(smtp))
    client = TestClient(create_app(ctx, background_applier=False))
    batch = [*catalog({"contacts": {"email": "ada@example.com"}, "preferences": {"channels": ["email"]}}),
             order("SO-1")]
    assert client.post("/events", json=batch).json()["accepted"] == len(batch)
    [row] = client.get("/notifications", params={"order_id": "SO-1"}).json()
    assert (row["kind"], row["channel"], row["recipient"], row["status"]) == (
        "backorder_created", "email", "ada@example.com", "pending")

    assert send(ctx) == 1
    [mail] = smtp.wait_for(1)
    text = mail.message.get_body(("plain",)).get_content()
    assert "Blue kettle" in text and "KTL-200" in text and "SO-1" in mail.message["Subject"] + text
    assert "2026" in text  # the lead-time ETA: today + 14 days

    again = client.post("/events", json=batch).json()
    assert again["duplicate"] == len(batch) and again["accepted"] == 0
    assert send(ctx) == 0
    assert len(smtp.messages) == 1 and len(outbox_rows(ctx)) == 1

    client.post("/events", json=[receipt("r1", 5)])
    assert send(ctx) == 1
    listed = client.get("/notifications", params={"customer_id": "C1"}).json()
    assert [(n["kind"], n["status"]) for n in listed] == [("allocated", "sent"), ("backorder_created", "sent")]
    assert all(set(n) >= {"id", "kind", "channel", "recipient", "status", "attempts", "created_at", "sent_at",
                          "error"} for n in listed)
    kpis = client.get("/metrics/notifications").json()
    assert kpis["delivery_rate"] == 1.0 and kpis["time_to_alert_ms"]["count"] == 2
    assert client.get("/notifications", params={"status": "bogus"}).status_code == 422


def test_quiet_hours_hold_a_notice_and_a_resolution_cancels_it_unsent(ctx: Context) -> None:
    # 09:00 UTC is 09:00 in London; quiet until 20:00 local.
    apply(ctx, [*catalog({"timezone": "Europe/London", "preferences": {"quiet_hours":
                                                                       {"start": "08:00", "end": "20:00"}}}),
                order("SO-1")])
    [created] = outbox_rows(ctx, kind="backorder_created")
    assert created.status == "pending" and created.due_at == datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    assert send(ctx) == 0  # not due yet

    ctx.clock.now += timedelta(hours=2)  # type: ignore[attr-defined]
    apply(ctx, [receipt("r1", 5)])
    by_kind = {r.kind: r for r in outbox_rows(ctx)}
    assert by_kind["backorder_created"].status == "cancelled"
    assert by_kind["backorder_created"].error_reason == "resolved"
    assert by_kind["allocated"].status == "pending"

    ctx.clock.now = datetime(2026, 3, 2, 20, 1, tzinfo=UTC)  # type: ignore[attr-defined]
    console, out = buffer_console()
    assert send(ctx, console) == 1
    assert "Blue kettle" in out.getvalue()
    assert [r.kind for r in outbox_rows(ctx, status="delivered")] == ["allocated"]


def test_digest_customers_get_one_message_with_every_change(ctx: Context) -> None:
    apply(ctx, [*catalog({"preferences": {"delivery": "digest", "digest_at": "17:00"}}),
                order("SO-1"), order("SO-2", sku="MUG-1", qty=3)])
    assert {r.status for r in outbox_rows(ctx, audience="customer")} == {"held"}
    assert send(ctx) == 0
    ctx.clock.now = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    console, out = buffer_console()
    assert send(ctx, console) == 1
    [digest] = outbox_rows(ctx, kind="digest")
    assert digest.status == "delivered"
    text = out.getvalue()
    assert "SO-1" in text and "SO-2" in text and "Blue kettle" in text and "Big mug" in text
    assert {r.status for r in outbox_rows(ctx, audience="customer") if r.kind != "digest"} == {"digested"}
    assert digests.run_due(ctx).customer_digests == 0  # nothing held any more


def test_frequency_cap_moves_the_extra_messages_to_the_digest(ctx: Context) -> None:
    apply(ctx, [*catalog({"preferences": {"max_per_order_per_day": 1}}), order("SO-1", qty=10)])
    apply(ctx, [receipt("r1", 4)])  # partial: still waiting, no allocated notice
    apply(ctx, [ev("po", "po.updated", {"po_id": "PO-1", "supplier_id": "S", "warehouse_id": "LDS",
                                        "expected_at": "2026-03-06", "lines": [{"sku": "KTL-200", "qty": 6}]})])
    statuses = {r.kind: r.status for r in outbox_rows(ctx, audience="customer")}
    assert statuses == {"backorder_created": "pending", "eta_changed": "held"}


def test_stop_means_no_customer_message_at_all(ctx: Context) -> None:
    apply(ctx, [*catalog({"preferences": {"opt_out": ["all"]}}), order("SO-1")])
    assert outbox_rows(ctx, audience="customer") == []


def test_no_usable_channel_is_recorded_dead_with_the_reasons(ctx: Context) -> None:
    apply(ctx, [*catalog({"preferences": {"channels": ["sms", "email"]}}), order("SO-1")])
    [row] = outbox_rows(ctx, audience="customer")
    assert (row.status, row.error_reason) == ("dead", "no_usable_channel")
    assert "sms (channel_not_configured)" in row.error and "email (channel_not_configured)" in row.error


def test_a_permanent_failure_falls_back_to_the_next_channel(ctx: Context, smtp: FakeSMTP) -> None:
    smtp.fail_recipient("bad@example.com", 550)
    ctx = configured(ctx, email=email_settings(smtp))
    apply(ctx, [*catalog({"contacts": {"email": "bad@example.com"},
                          "preferences": {"channels": ["email", "console"]}}), order("SO-1")])
    console, out = buffer_console()
    assert send(ctx, console) == 1
    rows = outbox_rows(ctx, audience="customer")
    assert [(r.channel, r.status, r.error_reason) for r in rows] == [
        ("email", "dead", "invalid_address"), ("console", "delivered", None)]
    assert rows[1].idempotency_key.endswith(rows[0].idempotency_key) and "Blue kettle" in out.getvalue()


def test_all_routing_sends_on_every_channel(ctx: Context, smtp: FakeSMTP) -> None:
    ctx = configured(ctx, email=email_settings(smtp))
    apply(ctx, [*catalog({"contacts": {"email": "ada@example.com"},
                          "preferences": {"channels": ["email", "console"], "routing": "all"}}), order("SO-1")])
    assert send(ctx, buffer_console()[0]) == 2
    assert len(smtp.wait_for(1)) == 1


def test_spanish_customer_gets_spanish(ctx: Context) -> None:
    apply(ctx, [*catalog({"locale": "es"}), order("SO-1")])
    [row] = outbox_rows(ctx, audience="customer")
    assert row.locale == "es" and "Blue kettle" in row.body
    assert any(word in row.body.lower() for word in ("pedido", "artículo", "fecha"))


def test_webhook_decisions_are_signed_retried_and_dead_lettered(ctx: Context, receiver: WebhookReceiver) -> None:
    ctx = configured(ctx, webhook={"url": receiver.url, "secret": SECRET, "allow_http": True,
                                   "allow_private": True},
                     notify={"max_attempts": 2, "backoff_seconds": 1.0})
    receiver.fail_next(1, "500")
    apply(ctx, [*catalog({}), order("SO-1")])
    hooks = outbox_rows(ctx, channel="webhook")
    assert {h.payload["type"] for h in hooks} == {"line_backordered", "eta_changed"}
    send(ctx, buffer_console()[0])
    failed = [r for r in outbox_rows(ctx, channel="webhook") if r.status == "failed"]
    assert len(failed) == 1 and failed[0].error_reason == "http_5xx" and failed[0].due_at > ctx.now()

    ctx.clock.now += timedelta(seconds=5)  # type: ignore[attr-defined]
    send(ctx)
    assert {r.status for r in outbox_rows(ctx, channel="webhook")} == {"delivered"}  # a 2xx is delivery
    got = receiver.requests
    assert all(r.signature_ok for r in got if r.outcome == "ok")
    assert {r.json()["type"] for r in got if r.outcome == "ok"} == {"line_backordered", "eta_changed"}

    receiver.fail_rate(1.0, "500")
    apply(ctx, [receipt("r1", 5)])
    for _ in range(3):
        send(ctx)
        ctx.clock.now += timedelta(seconds=10)  # type: ignore[attr-defined]
    dead = outbox_rows(ctx, status="dead")
    assert dead and all(r.error_reason == "http_5xx" and r.attempts == 2 for r in dead)


def test_an_expired_message_is_dead_not_sent_late(ctx: Context) -> None:
    apply(ctx, [*catalog({}), order("SO-1")])
    ctx.clock.now += timedelta(hours=49)  # type: ignore[attr-defined]
    console, out = buffer_console()
    send(ctx, console)
    [row] = outbox_rows(ctx, audience="customer")
    assert (row.status, row.error_reason) == ("dead", "expired") and out.getvalue() == ""


def test_back_in_stock_subscription_over_http(ctx: Context) -> None:
    client = TestClient(create_app(ctx, background_applier=False))
    empty = ev("a0", "inventory.adjusted", {"sku": "KTL-200", "warehouse_id": "LDS", "on_hand": 0})
    assert client.post("/events", json=[*catalog({}), empty]).status_code == 200
    bad = client.post("/subscriptions", json={"customer_id": "C404", "sku": "KTL-200"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "customer_id"]
    assert client.post("/subscriptions", json={"customer_id": "C1", "sku": "NOPE"}).json()["detail"][0]["loc"] \
        == ["body", "sku"]
    assert client.post("/subscriptions", json={"customer_id": "C1"}).status_code == 422
    made = client.post("/subscriptions", json={"customer_id": "C1", "sku": "KTL-200"})
    assert made.status_code == 201 and made.json()["status"] == "open"
    assert client.post("/subscriptions", json={"customer_id": "C1", "sku": "KTL-200"}).status_code == 200
    assert outbox_rows(ctx, kind="back_in_stock") == []
    client.post("/events", json=[receipt("r1", 3)])
    [row] = outbox_rows(ctx, kind="back_in_stock")
    assert "Blue kettle" in row.body
    [sub] = client.get("/subscriptions", params={"customer_id": "C1"}).json()
    assert sub["status"] == "notified"
    client.post("/events", json=[receipt("r2", 3)])
    assert len(outbox_rows(ctx, kind="back_in_stock")) == 1  # told once


def test_staff_hear_about_high_value_backorders_and_tasks(ctx: Context) -> None:
    ctx = configured(ctx, notify={"high_value_threshold": 500})
    apply(ctx, [*catalog({}), order("SO-1", qty=20)])  # 20 x 40 waiting
    [hv] = outbox_rows(ctx, kind="high_value_backorder")
    # The warehouse manager's first choice is SMS, not configured here: the console takes it.
    assert (hv.role, hv.channel, hv.recipient) == ("warehouse_manager", "console", "@warehouse_manager")
    assert "800" in hv.body and "SO-1" in hv.body
    apply(ctx, [ev("po", "po.updated", {"po_id": "PO-1", "supplier_id": "S", "warehouse_id": "LDS",
                                        "expected_at": "2026-03-06", "lines": [{"sku": "KTL-200", "qty": 30}]}),
                ev("po2", "po.updated", {"po_id": "PO-1", "supplier_id": "S", "warehouse_id": "LDS",
                                         "expected_at": "2026-03-06", "lines": [{"sku": "KTL-200", "qty": 10}]},
                   at="2026-03-02T08:59:30Z")])
    [task] = outbox_rows(ctx, kind="inventory_task")
    assert task.role == "team" and task.status == "pending"


def test_ops_digest_once_a_day_after_its_time(ctx: Context) -> None:
    ctx = configured(ctx, notify={"rules": {"ops_digest": {"enabled": True}}})
    apply(ctx, [*catalog({}), order("SO-1")])
    ctx.clock.now = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    assert digests.run_due(ctx).ops_digests == 0
    ctx.clock.now = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)  # type: ignore[attr-defined]
    assert digests.run_due(ctx).ops_digests == 1
    assert digests.run_due(ctx).ops_digests == 0
    [row] = outbox_rows(ctx, kind="ops_digest")
    assert row.facts["open_lines"] == 1 and row.facts["open_value"] == 80.0 and "KTL-200" in row.body
