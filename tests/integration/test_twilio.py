"""SMS and WhatsApp through Twilio, on both stores: webhooks signed like Twilio signs them, answers through the
intents pipeline and the outbox, sent by the official twilio client to a fake Twilio API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import func, select

from bot.api import create_app
from notifiers.senders.base import Outgoing, PermanentError, RetryableError, SendError
from notifiers.senders.twilio import TwilioSender
from notifiers.twilio_errors import classify
from services.context import Context
from store import outbox
from store import tables as t
from store.chat_state import first_delivery
from store.db import unit_of_work
from tests.fakes.twilio_api import (
    FakeTwilio,
    inbound_sms,
    inbound_whatsapp,
    new_sid,
    signed,
    status_callback,
)
from tests.senders import failure_of, send_once
from tests.twilio_bot import ACCOUNT, PUBLIC, SMS_FROM, TOKEN, WA_FROM, TwilioBot

ADA, BEA, STRANGER, OPS = "+447911123456", "+34612345678", "+447700900999", "+447700900001"
TEMPLATE = "HX" + "b2" * 16
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.wall_clock  # the sender measures WhatsApp's 24-hour window against real time


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": "2026-03-02T08:00:00Z", "source": "t", "data": data}


def order(order_id: str, customer: str, sku: str = "KTL-200", qty: int = 2) -> dict[str, Any]:
    return ev(f"o{order_id}", "order.placed", {"order_id": order_id, "customer_id": customer, "lines": [
        {"line_id": "1", "sku": sku, "qty": qty, "unit_price": 40}]})


def customers(channels: list[str]) -> list[dict[str, Any]]:
    return [
        ev("w", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
        ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40, "lead_time_days": 9}),
        ev("p2", "product.upserted", {"sku": "GRN-12", "name": "Coffee grinder", "price": 60}),
        ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "region": "north",
                                       "contacts": {"phone": ADA, "whatsapp": ADA, "email": "ada@example.com"},
                                       "preferences": {"channels": channels}}),
        ev("c2", "customer.upserted", {"customer_id": "C2", "name": "Bea", "locale": "es",
                                       "contacts": {"phone": BEA, "whatsapp": BEA},
                                       "preferences": {"channels": ["console"]}}),
    ]


class Bot(TwilioBot):
    """The Twilio bot with an ops member reachable by SMS; `rates` are the per-destination limits, the other
    keywords go to [twilio]."""

    def __init__(self, ctx: Context, fake: FakeTwilio, **twilio: Any) -> None:
        rates = twilio.pop("rates", {"sms": 100.0, "whatsapp": 100.0})
        super().__init__(ctx, fake, twilio,
                         notify={"rules": {"ops_digest": {"enabled": False}}, "rate_per_destination": rates},
                         staff={"members": {"ops1": {"roles": ["ops"], "phone": OPS}}})

    def status(self, sid: str, status: str, to: str, error_code: str | None = None) -> Response:
        return self.post(status_callback(TOKEN, PUBLIC, sid=sid, status=status, to=to, error_code=error_code,
                                         account_sid=ACCOUNT))


@pytest.fixture
def bot(ctx: Context, fake: FakeTwilio) -> Bot:
    b = Bot(ctx, fake)
    b.events([*customers(["console"]), order("1042", "C1"), order("2001", "C2", "GRN-12", 3)])
    return b


def suppressed(ctx: Context, channel: str, number: str) -> bool:
    s = t.suppressions
    with ctx.engine.connect() as conn:
        return conn.execute(select(s.c.reason).where(s.c.channel == channel, s.c.address == number)).first() \
            is not None


def prefs(ctx: Context, customer_id: str = "C1") -> dict[str, Any]:
    c = t.customers
    with ctx.engine.connect() as conn:
        return dict(conn.execute(select(c.c.preferences).where(c.c.customer_id == customer_id)).scalar_one() or {})


# ---------------------------------------------------------------- signatures


def test_only_requests_signed_by_twilio_for_our_public_url_are_answered(bot: Bot) -> None:
    path, form, headers = inbound_sms(TOKEN, PUBLIC, frm=ADA, body="where is my order 1042?", account_sid=ACCOUNT)
    missing = {k: v for k, v in headers.items() if k != "X-Twilio-Signature"}
    wrong = {**headers, "X-Twilio-Signature": signed("not-our-token", PUBLIC, path, form)["X-Twilio-Signature"]}
    other_url = {**headers, **signed(TOKEN, "https://evil.example.com", path, form)}
    rejected = [
        (form, missing, "missing X-Twilio-Signature"),
        (form, wrong, "does not match"),
        ({**form, "Body": "where is order 2001?"}, headers, "does not match"),  # tampered after signing
        ({**form, "From": BEA}, headers, "does not match"),
        (form, other_url, "does not match"),
    ]
    for data, hdrs, reason in rejected:
        r = bot.client.post(path, data=data, headers=hdrs)
        assert r.status_code == 403 and reason in r.json()["detail"]
    assert bot.rows(kind="chat_reply") == []
    assert bot.client.post(path, data=form, headers=headers).status_code == 200
    assert len(bot.rows(kind="chat_reply")) == 1
    # A status callback is checked the same way.
    cb_path, cb_form, cb_headers = status_callback(TOKEN, PUBLIC, sid="SMx", status="delivered", to=ADA)
    assert bot.client.post(cb_path, data={**cb_form, "MessageStatus": "failed"}, headers=cb_headers).status_code == 403


def test_a_signed_request_without_from_is_refused_naming_the_field(bot: Bot) -> None:
    path, form, _ = inbound_sms(TOKEN, PUBLIC, frm=ADA, body="hi", account_sid=ACCOUNT)
    del form["From"]
    r = bot.client.post(path, data=form, headers=signed(TOKEN, PUBLIC, path, form))
    assert r.status_code == 400 and "From" in r.json()["detail"]


def test_channels_not_configured_are_not_mounted(ctx: Context, fake: FakeTwilio) -> None:
    sms_only = Bot(ctx, fake, whatsapp_from=None)
    assert sms_only.ctx.settings.twilio.sms and not sms_only.ctx.settings.twilio.whatsapp
    assert sms_only.post(inbound_whatsapp(TOKEN, PUBLIC, frm=ADA, body="hi")).status_code == 404
    assert sms_only.post(inbound_sms(TOKEN, PUBLIC, frm=ADA, body="hi")).status_code == 200
    without = TestClient(create_app(ctx, background_applier=False))
    assert without.post("/twilio/sms", data={"Body": "hi"}).status_code == 404
    assert without.post("/twilio/status", data={"MessageSid": "SM1"}).status_code == 404


# ---------------------------------------------------------------- answers end to end


def test_a_customer_asks_by_sms_and_the_answer_goes_back_through_twilio(bot: Bot) -> None:
    bot.sms("+44 7911 123456", "where is my order 1042?")  # From as a carrier might format it
    [row] = bot.rows(kind="chat_reply")
    assert (row.channel, row.recipient, row.customer_id, row.audience, row.status, row.urgent) == (
        "sms", ADA, "C1", "customer", "pending", True)
    assert bot.drain() >= 1
    [msg] = bot.sent_to(ADA)
    assert msg.auth_ok and msg.form["From"] == SMS_FROM
    assert "Blue kettle" in msg.form["Body"] and "1042" in msg.form["Body"]
    assert msg.form["StatusCallback"] == f"{PUBLIC}/twilio/status"
    [row] = bot.rows(kind="chat_reply")
    assert row.status == "sent" and row.provider_id.startswith("SM")


def test_a_customer_asks_on_whatsapp(bot: Bot) -> None:
    bot.wa(ADA, "where is my order 1042?")
    assert bot.drain() >= 1
    [msg] = bot.sent_to(f"whatsapp:{ADA}")
    assert msg.form["From"] == f"whatsapp:{WA_FROM}"
    assert "Blue kettle" in msg.form["Body"] and "ContentSid" not in msg.form


def test_an_unknown_number_gets_the_stranger_answer(bot: Bot) -> None:
    bot.sms(STRANGER, "where is order 1042")
    bot.drain()
    [msg] = bot.sent_to(STRANGER)
    assert "see an account" in msg.form["Body"] and "Blue kettle" not in msg.form["Body"]
    assert bot.rows(kind="chat_reply")[0].customer_id is None


def test_a_staff_phone_is_answered_as_staff(bot: Bot) -> None:
    bot.sms(OPS, "who is waiting for KTL-200?")
    [row] = bot.rows(kind="chat_reply")
    assert row.audience == "staff" and "1042" in row.body and "see an account" not in row.body


def test_a_redelivered_message_is_answered_once(bot: Bot) -> None:
    built = inbound_sms(TOKEN, PUBLIC, frm=ADA, body="where is my order 1042?", account_sid=ACCOUNT)
    for _ in range(3):
        assert bot.post(built).status_code == 200
    bot.drain()
    assert len(bot.rows(kind="chat_reply")) == 1 and len(bot.sent_to(ADA)) == 1


def test_a_quick_reply_button_is_routed_to_its_action(bot: Bot) -> None:
    bot.wa(ADA, "Where is my order?", button_payload="order_status:1042", button_text="Where is my order?")
    bot.wa(ADA, "Where is my order?", button_payload="order_status:2001", button_text="Where is my order?")
    mine, other = (r.body for r in bot.rows(kind="chat_reply"))
    assert "Blue kettle" in mine and "1042" in mine
    assert "2001" in other and "can't find" in other and "grinder" not in other.lower()


# ---------------------------------------------------------------- keywords


def test_stop_by_sms_is_recorded_at_once_and_later_notices_do_not_go_by_sms(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake, whatsapp_templates={"backorder_created": TEMPLATE})
    bot.events([*customers(["sms", "whatsapp"]), order("1042", "C1")])
    [queued] = bot.rows(kind="backorder_created")
    assert (queued.channel, queued.status) == ("sms", "pending")

    bot.sms(ADA, "Stop ")
    assert suppressed(bot.ctx, "sms", ADA) and prefs(bot.ctx)["opt_out"] == ["sms"]
    assert bot.rows(kind="keyword_reply") == []  # Twilio's Advanced Opt-Out confirms STOP on SMS

    bot.drain()  # the notice queued before STOP is refused by the sender and falls back to WhatsApp
    assert bot.sent_to(ADA) == []
    dead = bot.rows(id=queued.id)[0]
    assert (dead.status, dead.error_reason) == ("dead", "opted_out")
    assert [m.form["ContentSid"] for m in bot.sent_to(f"whatsapp:{ADA}")] == [TEMPLATE]

    bot.events([order("1043", "C1")])  # planned after STOP: routed to WhatsApp from the start
    [later] = [r for r in bot.rows(kind="backorder_created") if r.order_id == "1043"]
    assert later.channel == "whatsapp" and later.fallback == []
    bot.drain()
    assert bot.sent_to(ADA) == []


def test_stop_on_whatsapp_is_confirmed_and_start_undoes_it(bot: Bot) -> None:
    bot.wa(ADA, "STOP")
    assert suppressed(bot.ctx, "whatsapp", ADA) and prefs(bot.ctx)["opt_out"] == ["whatsapp"]
    bot.drain()
    [confirmation] = bot.sent_to(f"whatsapp:{ADA}")
    assert "unsubscribed" in confirmation.form["Body"] and "START" in confirmation.form["Body"]

    bot.wa(ADA, "start")
    assert not suppressed(bot.ctx, "whatsapp", ADA) and "opt_out" not in prefs(bot.ctx)
    bot.drain()
    assert "subscribed again" in bot.sent_to(f"whatsapp:{ADA}")[1].form["Body"]

    bot.wa(BEA, "baja")  # a Spanish customer, in Spanish
    bot.drain()
    [baja] = bot.sent_to(f"whatsapp:{BEA}")
    assert "Te hemos dado de baja" in baja.form["Body"] and suppressed(bot.ctx, "whatsapp", BEA)


def test_help_is_answered_unless_twilio_answered_it(bot: Bot) -> None:
    bot.sms(ADA, "HELP")
    bot.sms(ADA, "help", extra={"OptOutType": "HELP"})  # Advanced Opt-Out already replied to this one
    bot.drain()
    [msg] = bot.sent_to(ADA)
    assert "STOP" in msg.form["Body"] and "order" in msg.form["Body"]
    # "yes" only opts back in a number that opted out; otherwise it is a chat message like any other
    bot.sms(ADA, "yes")
    assert [r.kind for r in bot.rows(recipient=ADA)] == ["keyword_reply", "chat_reply"]


# ---------------------------------------------------------------- notices on WhatsApp


def test_a_notice_inside_the_window_goes_as_text_with_quick_reply_buttons(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake, whatsapp_templates={"backorder_created": TEMPLATE})
    bot.events(customers(["whatsapp", "sms"]))
    bot.wa(ADA, "hello")  # opens the 24-hour window
    bot.events([order("1042", "C1")])
    bot.drain()
    bot.events([ev("r1", "inventory.received", {"sku": "KTL-200", "warehouse_id": "LDS", "qty": 5})])
    [allocated] = bot.rows(kind="allocated")
    assert allocated.channel == "whatsapp" and allocated.fallback == [["sms", ADA]]
    bot.drain()
    [content] = fake.contents
    quick = content.json["types"]["twilio/quick-reply"]  # type: ignore[index]
    assert quick["actions"] == [  # the payloads are variables: one template for every order
        {"type": "QUICK_REPLY", "title": "Where is my order?", "id": "{{2}}"},
        {"type": "QUICK_REPLY", "title": "Talk to a person", "id": "{{3}}"},
    ]
    notices = [m for m in bot.sent_to(f"whatsapp:{ADA}") if "ContentSid" in m.form]
    assert len(notices) == 2  # backorder_created then allocated: the same buttons, one Content template
    assert {m.form["ContentSid"] for m in notices} == {content.sid}
    variables = [json.loads(m.form["ContentVariables"]) for m in notices]
    assert "1042" in variables[1]["1"] and "reserved" in variables[1]["1"]
    assert all((v["2"], v["3"]) == ("order_status:1042", "handoff:1042") for v in variables)
    bot.events([order("1057", "C1", sku="GRN-12")])  # another backorder: the same template, its own payloads
    bot.drain()
    [later] = [m for m in bot.sent_to(f"whatsapp:{ADA}") if "ContentSid" in m.form][2:]
    assert later.form["ContentSid"] == content.sid and len(fake.contents) == 1
    assert json.loads(later.form["ContentVariables"])["2"] == "order_status:1057"
    assert bot.rows(kind="allocated")[0].status == "sent"


def test_outside_the_window_a_template_goes_and_without_one_sms(ctx: Context, fake: FakeTwilio,
                                                                 clock: Clock) -> None:
    bot = Bot(ctx, fake, whatsapp_templates={"backorder_created": TEMPLATE})
    bot.events(customers(["whatsapp", "sms"]))
    real = clock.now
    clock.now = real - timedelta(hours=25)
    bot.wa(ADA, "hello")  # a day and an hour ago: the window has closed
    clock.now = real
    bot.events([order("1042", "C1")])
    bot.drain()
    [notice] = bot.sent_to(f"whatsapp:{ADA}")  # (the answer to "hello" expired unsent an hour after it)
    assert notice.form["ContentSid"] == TEMPLATE and "Body" not in notice.form
    variables = json.loads(notice.form["ContentVariables"])
    assert set(variables) == {"1", "2"} and "1042" in variables["1"] and "\n" not in variables["2"]
    assert "Blue kettle" in variables["2"]

    bot.events([ev("r1", "inventory.received", {"sku": "KTL-200", "warehouse_id": "LDS", "qty": 5})])
    bot.drain()  # no template for "allocated": dead on WhatsApp, sent by SMS instead
    [wa_row] = bot.rows(kind="allocated", channel="whatsapp")
    assert (wa_row.status, wa_row.error_reason) == ("dead", "no_whatsapp_template")
    [sms_row] = bot.rows(kind="allocated", channel="sms")
    [sms] = bot.sent_to(ADA)
    assert sms_row.status == "sent" and "1042" in sms.form["Body"]


# ---------------------------------------------------------------- status callbacks


def test_status_callbacks_move_a_message_forward_only(bot: Bot) -> None:
    bot.sms(ADA, "where is my order 1042?")
    bot.drain()
    [row] = bot.rows(kind="chat_reply")
    assert bot.status(row.provider_id, "sent", ADA).status_code == 200
    assert bot.rows(id=row.id)[0].status == "sent"
    assert bot.status(row.provider_id, "delivered", ADA).status_code == 200
    assert bot.status(row.provider_id, "sent", ADA).status_code == 200  # late, out of order
    assert bot.status(row.provider_id, "undelivered", ADA, "30003").status_code == 200
    done = bot.rows(id=row.id)[0]
    assert done.status == "delivered" and done.delivered_at is not None and done.error_reason is None
    before = [tuple(r) for r in bot.rows()]
    assert bot.status("SM" + "f" * 32, "delivered", ADA).status_code == 200  # not ours: nothing changes
    assert [tuple(r) for r in bot.rows()] == before
    assert bot.status(row.provider_id, "bogus", ADA).status_code == 400


def test_a_21610_failure_suppresses_the_number(bot: Bot) -> None:
    bot.sms(ADA, "where is my order 1042?")
    bot.drain()
    [row] = bot.rows(kind="chat_reply")
    bot.status(row.provider_id, "failed", ADA, "21610")
    dead = bot.rows(id=row.id)[0]
    assert (dead.status, dead.error_reason) == ("dead", "opted_out") and suppressed(bot.ctx, "sms", ADA)
    with bot.ctx.engine.connect() as conn:  # and planning routes around SMS from now on, as after a STOP
        prefs = conn.execute(select(t.customers.c.preferences).where(t.customers.c.customer_id == "C1")).scalar_one()
    assert prefs["opt_out"] == ["sms"]


def test_a_callback_that_overtakes_the_workers_result_finds_its_row(bot: Bot) -> None:
    bot.sms(ADA, "where is my order 1042?")
    [row] = bot.rows(kind="chat_reply")
    now = bot.ctx.now()
    with unit_of_work(bot.ctx.engine) as conn:  # a worker claims the row...
        assert row.id in [r.id for r in outbox.claim(conn, "worker-a", 100, now, 60)]
    sender = TwilioSender("sms", bot.ctx.settings.twilio, bot.ctx.engine, clock=bot.ctx.now)
    sent = asyncio.run(send_once(sender, Outgoing(id=row.id, channel="sms", recipient=ADA, kind="chat_reply",
                                                   body=row.body, idempotency_key=row.idempotency_key)))
    sending = bot.rows(id=row.id)[0]  # ...Twilio accepted it; the worker's batch has not been recorded yet
    assert (sending.status, sending.provider_id) == ("sending", sent.provider_id)
    assert bot.status(sent.provider_id, "delivered", ADA).status_code == 200
    delivered = bot.rows(id=row.id)[0]
    assert delivered.status == "delivered" and delivered.sent_at is not None and delivered.lease_owner is None
    with unit_of_work(bot.ctx.engine) as conn:  # the late batch result leaves the decided row alone
        assert outbox.record(conn, "worker-a", [outbox.Result(row.id, "sent", provider_id=sent.provider_id)],
                             now) == 0
    assert bot.rows(id=row.id)[0].status == "delivered"


def test_a_21211_failure_falls_back_and_a_30001_is_retried(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake, whatsapp_templates={"backorder_created": TEMPLATE})
    bot.events([*customers(["whatsapp", "sms"]), order("1042", "C1")])
    bot.drain()
    [wa_row] = bot.rows(kind="backorder_created")
    bot.status(wa_row.provider_id, "undelivered", ADA, "21211")
    dead = bot.rows(id=wa_row.id)[0]
    assert (dead.status, dead.error_reason) == ("dead", "invalid_number")
    [sms_row] = bot.rows(kind="backorder_created", channel="sms")
    assert sms_row.status == "pending"
    bot.drain()
    sms_row = bot.rows(id=sms_row.id)[0]
    assert sms_row.status == "sent" and len(bot.sent_to(ADA)) == 1

    bot.status(sms_row.provider_id, "failed", ADA, "30001")  # Twilio's queue overflowed: try again later
    retry = bot.rows(id=sms_row.id)[0]
    assert (retry.status, retry.error_reason) == ("failed", "provider_busy") and retry.due_at > bot.ctx.now()


# ---------------------------------------------------------------- the sender against the fake


def msg(channel: str = "sms", kind: str = "chat_reply", to: str = ADA, **kw: Any) -> Outgoing:
    return Outgoing(id=1, channel=channel, recipient=to, kind=kind, body="Your order 1042 ships Monday.",
                    idempotency_key="k1", **kw)


def failure(sender: TwilioSender, m: Outgoing) -> SendError:
    return asyncio.run(failure_of(sender, m))


def test_a_batch_asking_for_the_same_buttons_at_once_makes_one_template(bot: Bot, fake: FakeTwilio) -> None:
    numbers = [f"+4479111234{i:02d}" for i in range(12)]
    with unit_of_work(bot.ctx.engine) as conn:  # every recipient wrote to us just now: inside the window
        for i, number in enumerate(numbers):
            first_delivery(conn, "whatsapp", f"SMin{i}", number, bot.ctx.now())
    card = {"title": "t", "text": "x", "fields": [], "topic": None, "actions": [
        {"id": "order_status", "label": "Where is my order?", "value": "1042"},
        {"id": "handoff", "label": "Talk to a person", "value": "1042"}]}
    sender = TwilioSender("whatsapp", bot.ctx.settings.twilio, bot.ctx.engine, clock=bot.ctx.now)

    async def burst() -> None:
        try:
            await asyncio.gather(*(sender.send(Outgoing(
                id=i, channel="whatsapp", recipient=n, kind="backorder_created", body=f"Order {i}",
                idempotency_key=f"k{i}", payload=card)) for i, n in enumerate(numbers)))
        finally:
            await sender.aclose()

    asyncio.run(burst())
    assert len(fake.contents) == 1  # not one per concurrent send
    assert len({m.form["ContentSid"] for m in fake.messages}) == 1 and len(fake.messages) == len(numbers)


@pytest.mark.parametrize(("mode", "kind", "reason", "retry_after"), [
    ("429", RetryableError, "rate_limited", 2.0),
    ("500", RetryableError, "server_error", None),
    (21211, PermanentError, "invalid_number", None),
    (21614, PermanentError, "invalid_number", None),
    (63016, PermanentError, "outside_whatsapp_window", None),
    (21408, PermanentError, "twilio_21408", None),
])
def test_the_sender_classifies_twilio_errors(bot: Bot, mode: str | int, kind: type[SendError], reason: str,
                                              retry_after: float | None) -> None:
    bot.fake.fail_next(1, mode)
    exc = failure(TwilioSender("sms", bot.ctx.settings.twilio, bot.ctx.engine), msg())
    assert type(exc) is kind and exc.reason == reason and exc.retry_after == retry_after
    assert not suppressed(bot.ctx, "sms", ADA)


def test_the_sender_suppresses_on_21610_and_then_refuses_without_calling(bot: Bot) -> None:
    bot.fake.fail_next(1, 21610)
    sender = TwilioSender("sms", bot.ctx.settings.twilio, bot.ctx.engine)
    exc = failure(sender, msg())
    assert isinstance(exc, PermanentError) and exc.reason == "opted_out" and suppressed(bot.ctx, "sms", ADA)
    calls = len(bot.fake.requests)
    exc = failure(TwilioSender("sms", bot.ctx.settings.twilio, bot.ctx.engine), msg())
    assert exc.reason == "opted_out" and len(bot.fake.requests) == calls


def test_an_unreachable_twilio_is_retried(bot: Bot) -> None:
    settings = bot.ctx.settings.twilio.model_copy(update={"api_base_url": "http://127.0.0.1:9"})
    exc = failure(TwilioSender("sms", settings, bot.ctx.engine), msg())
    assert isinstance(exc, RetryableError) and exc.reason == "connection"


def test_a_burst_to_one_number_keeps_its_rate(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake, rates={"sms": 5.0})
    bot.events(customers(["console"]))
    for i in range(4):
        bot.sms(ADA, f"where is order {1042 + i}?")
    bot.drain()
    arrivals = [m.monotonic for m in bot.sent_to(ADA)]
    assert len(arrivals) == 4
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.2 - 0.03  # 5 a second to one number, never faster (jitter of the timer aside)


def test_the_window_opens_with_the_customers_message(bot: Bot) -> None:
    """A notice kind outside the window with no template is refused before any call to Twilio."""
    sender = TwilioSender("whatsapp", bot.ctx.settings.twilio, bot.ctx.engine, clock=bot.ctx.now)
    exc = failure(sender, msg("whatsapp", "eta_changed", payload={"title": "t", "text": "x", "actions": []}))
    assert isinstance(exc, PermanentError) and exc.reason == "no_whatsapp_template" and bot.fake.requests == []
    with unit_of_work(bot.ctx.engine) as conn:
        conn.execute(t.inbound_messages.insert().values(channel="whatsapp", message_id=new_sid(), sender=ADA,
                                                        received_at=bot.ctx.now() - timedelta(hours=23)))
    sent = asyncio.run(send_once(TwilioSender("whatsapp", bot.ctx.settings.twilio, bot.ctx.engine,
                                               clock=bot.ctx.now),
                                  msg("whatsapp", "eta_changed", payload={"title": "t", "text": "x", "actions": []})))
    assert sent.provider_id == bot.fake.messages[-1].sid
    assert bot.fake.messages[-1].form["Body"] == "Your order 1042 ships Monday."



# ---------------------------------------------------------------- review fixes


def test_a_send_refused_with_21610_opts_the_customer_out_like_stop(bot: Bot) -> None:
    bot.sms(ADA, "where is my order 1042?")
    bot.fake.fail_next(1, 21610)  # Ada told her carrier STOP; Twilio refuses the answer
    bot.drain()
    [row] = bot.rows(kind="chat_reply")
    assert (row.status, row.error_reason) == ("dead", "opted_out")
    assert suppressed(bot.ctx, "sms", ADA) and prefs(bot.ctx)["opt_out"] == ["sms"]  # planning routes around SMS
    bot.sms(ADA, "START")  # and START undoes both, whichever path opted her out
    assert not suppressed(bot.ctx, "sms", ADA) and "opt_out" not in prefs(bot.ctx)


@pytest.mark.parametrize(("code", "reason"), [("63016", "outside_whatsapp_window"), ("30003", "twilio_30003")])
def test_an_undeliverable_callback_falls_back_to_the_next_channel(ctx: Context, fake: FakeTwilio, code: str,
                                                                   reason: str) -> None:
    assert not classify(code).retryable
    bot = Bot(ctx, fake, whatsapp_templates={"backorder_created": TEMPLATE})
    bot.events([*customers(["whatsapp", "sms"]), order("1042", "C1")])
    bot.drain()
    [wa_row] = bot.rows(kind="backorder_created")
    assert wa_row.channel == "whatsapp" and wa_row.fallback == [["sms", ADA]]
    assert bot.status(wa_row.provider_id, "undelivered", ADA, code).status_code == 200
    dead = bot.rows(id=wa_row.id)[0]
    assert (dead.status, dead.error_reason) == ("dead", reason)
    [sms_row] = bot.rows(kind="backorder_created", channel="sms")
    assert sms_row.status == "pending" and sms_row.fallback == []
    bot.drain()
    [sms] = bot.sent_to(ADA)
    assert "1042" in sms.form["Body"] and bot.rows(id=sms_row.id)[0].status == "sent"


def test_a_callback_after_the_last_retry_falls_back(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake, whatsapp_templates={"backorder_created": TEMPLATE})
    bot.events([*customers(["whatsapp", "sms"]), order("1042", "C1")])
    bot.drain()
    [wa_row] = bot.rows(kind="backorder_created")
    with unit_of_work(bot.ctx.engine) as conn:  # the attempt Twilio accepted was this row's last one
        conn.execute(t.outbox.update().where(t.outbox.c.id == wa_row.id)
                     .values(attempts=bot.ctx.settings.notify.max_attempts))
    bot.status(wa_row.provider_id, "failed", ADA, "30001")  # retryable, but no retries left
    dead = bot.rows(id=wa_row.id)[0]
    assert (dead.status, dead.error_reason) == ("dead", "provider_busy")
    assert [r.status for r in bot.rows(kind="backorder_created", channel="sms")] == ["pending"]


def test_an_answer_that_failed_is_given_when_twilio_delivers_again(bot: Bot) -> None:
    # A conversation state the pipeline cannot read (written by an older release, say) breaks answering.
    key = "sms:customer:C1"
    with unit_of_work(bot.ctx.engine) as conn:
        conn.execute(t.conversations.insert().values(key=key, state={"awaiting": "order_id"},
                                                     updated_at=bot.ctx.now()))
    built = inbound_sms(TOKEN, PUBLIC, frm=ADA, body="1042", account_sid=ACCOUNT)
    failing = TestClient(bot.client.app, raise_server_exceptions=False)
    assert failing.post(built[0], data=built[1], headers=built[2]).status_code == 500
    assert bot.rows(kind="chat_reply") == []
    with unit_of_work(bot.ctx.engine) as conn:  # repaired before Twilio delivers again
        conn.execute(t.conversations.delete().where(t.conversations.c.key == key))
    assert bot.post(built).status_code == 200
    [row] = bot.rows(kind="chat_reply")
    assert row.recipient == ADA and "1042" in row.body
    assert bot.post(built).status_code == 200 and len(bot.rows(kind="chat_reply")) == 1  # and only once


def test_concurrent_deliveries_of_one_message_are_answered_once(bot: Bot) -> None:
    built = inbound_sms(TOKEN, PUBLIC, frm=ADA, body="where is my order 1042?", account_sid=ACCOUNT)
    stop = inbound_whatsapp(TOKEN, PUBLIC, frm=BEA, body="STOP", account_sid=ACCOUNT)
    start = threading.Barrier(8)

    def deliver(request: tuple[str, dict[str, str], dict[str, str]]) -> int:
        start.wait(10)
        return bot.post(request).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(deliver, [built] * 4 + [stop] * 4))
    assert codes == [200] * 8
    assert len(bot.rows(kind="chat_reply")) == 1
    [confirmation] = bot.rows(kind="keyword_reply")  # STOP took effect once, confirmed once
    assert confirmation.recipient == BEA and suppressed(bot.ctx, "whatsapp", BEA)
    im = t.inbound_messages
    with bot.ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(im)).scalar_one() == 2


def test_a_staff_phone_reads_but_may_not_act(bot: Bot) -> None:
    bot.sms(ADA, "can I talk to a person please?")  # a customer's hand-off opens a task
    with bot.ctx.engine.connect() as conn:
        [task_id] = conn.execute(select(t.tasks.c.id).where(t.tasks.c.kind == "handoff")).scalars().all()
    bot.sms(OPS, "run allocation for KTL-200")
    bot.sms(OPS, f"close task {task_id}")
    bot.wa(OPS, "Close task", button_payload=f"complete_task:{task_id}", button_text="Close task")
    bot.sms(OPS, "who is waiting for KTL-200?")
    *refused, read = [r for r in bot.rows(kind="chat_reply") if r.recipient == OPS]
    assert [r.audience for r in [*refused, read]] == ["staff"] * 4
    assert "may run allocation" in refused[0].body
    assert all("may close handoff tasks" in r.body for r in refused[1:])
    assert "1042" in read.body  # reading is still open to them
    with bot.ctx.engine.connect() as conn:
        assert conn.execute(select(t.tasks.c.status).where(t.tasks.c.id == task_id)).scalar_one() == "open"


def test_an_oversized_webhook_is_refused_before_it_is_read(bot: Bot) -> None:
    path, form, headers = inbound_sms(TOKEN, PUBLIC, frm=ADA, body="x" * (70 * 1024), account_sid=ACCOUNT)
    r = bot.client.post(path, data=form, headers=headers)
    assert r.status_code == 413 and r.json() == {"detail": "body: over 65536 bytes"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused once the body passes 64 KiB
        yield b"Body="
        for _ in range(70):
            yield b"x" * 1024

    r = bot.client.post("/twilio/status", content=chunks(), headers={
        "X-Twilio-Signature": headers["X-Twilio-Signature"], "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and r.json()["detail"].startswith("body:")
    assert bot.rows(kind="chat_reply") == [] and bot.sms(ADA, "where is my order 1042?").status_code == 200


def test_a_burst_to_different_numbers_keeps_the_senders_mps(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake, sms_mps=5, rates={"sms": 100.0})  # per-number limits lifted: only the MPS holds them
    bot.events(customers(["console"]))
    numbers = [f"+4477009001{i:02d}" for i in range(5)]
    for number in numbers:
        bot.sms(number, "hello")
    bot.drain()
    assert sorted(m.form["To"] for m in fake.messages) == numbers
    arrivals = sorted(m.monotonic for m in fake.messages)
    # 5 a second from our number, never faster: the dispatcher paces the start of each send, and the sender's
    # own work before its request (a store read) varies by some tens of milliseconds on a busy machine.
    assert min(b - a for a, b in itertools.pairwise(arrivals)) >= 0.2 - 0.05


# A worker started later: its own process, nothing cached in it; it sends two quick replies.
LATER_WORKER = """
import asyncio, json, sys
from backorder.config import TwilioSettings
from notifiers.senders.base import Outgoing
from notifiers.senders.twilio import TwilioSender
from notifiers.twilio_errors import classify
from store.db import make_engine

settings = TwilioSettings.model_validate(json.loads(sys.argv[1]))
url, to, card = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])

async def main() -> None:
    sender = TwilioSender("whatsapp", settings, make_engine(url))
    try:
        for i in range(2):
            await sender.send(Outgoing(id=100 + i, channel="whatsapp", recipient=to, kind="chat_reply",
                                       body=f"Answer {i}", idempotency_key=f"later{i}", payload=card))
    finally:
        await sender.aclose()

asyncio.run(main())
"""


def test_a_new_process_reuses_the_quick_reply_template_an_earlier_one_made(bot: Bot, fake: FakeTwilio) -> None:
    for i in range(60):  # the account's other templates: the list comes back in two pages
        fake.add_content(f"someone_else_{i}")
    card = {"title": "t", "text": "x", "fields": [], "topic": None, "actions": [
        {"id": "order_status", "label": "Order status?", "value": "1042"},
        {"id": "handoff", "label": "A person, please", "value": "1042"}]}
    asyncio.run(send_once(TwilioSender("whatsapp", bot.ctx.settings.twilio, bot.ctx.engine),
                           msg("whatsapp", "chat_reply", payload=card)))
    [made] = fake.contents
    assert made.json["friendly_name"].startswith("backorder_quick_reply_")  # type: ignore[index]
    assert len(fake.content_lists) == 2  # it looked (both pages) before it made one

    s = bot.ctx.settings.twilio
    config = {"account_sid": ACCOUNT, "auth_token": TOKEN, "api_base_url": s.api_base_url,
              "public_base_url": PUBLIC, "whatsapp_from": WA_FROM}
    done = subprocess.run([sys.executable, "-c", LATER_WORKER, json.dumps(config), bot.ctx.settings.database_url,
                           ADA, json.dumps(card)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 0, done.stderr
    assert len(fake.contents) == 1  # found, not made again
    assert len(fake.content_lists) == 4  # one listing (two pages) for both of its sends
    assert [m.form["ContentSid"] for m in fake.messages[-2:]] == [made.sid] * 2
