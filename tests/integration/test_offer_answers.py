"""Customers answer offers, end to end, on both stores: a WhatsApp quick-reply button, an SMS keyword, a signed
link in an e-mail, each through its real request format (Twilio's signed webhooks, plain browser GET and POST),
down to the allocation change, the audit rows and the confirmation sent through a fake Twilio on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from allocation.substitutes import SUBSTITUTED
from backorder.config import load_settings
from services.context import Context
from services.customer_actions import keyword, link_signature
from store import tables as t
from tests.fakes.twilio_api import Captured, FakeTwilio
from tests.invariants import invariants_hold, post_events
from tests.twilio_bot import TwilioBot

LINKS = "https://shop.example.com/bot"
SECRET = "links-secret-for-tests"
ADA, BEA, STRANGER = "+447911123456", "+34612345678", "+447700900999"

pytestmark = pytest.mark.wall_clock  # the WhatsApp sender measures its 24-hour window against real time


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": "2026-03-02T08:00:00Z", "source": "t", "data": data}


def order(order_id: str, customer: str, sku: str = "A", qty: int = 2) -> dict[str, Any]:
    return ev(f"o{order_id}", "order.placed", {"order_id": order_id, "customer_id": customer, "lines": [
        {"line_id": "1", "sku": sku, "qty": qty, "unit_price": 40}]})


def stock(sku: str, on_hand: int, tag: str = "") -> dict[str, Any]:
    return ev(f"s{sku}{on_hand}{tag}", "inventory.adjusted", {"sku": sku, "warehouse_id": "LDS", "on_hand": on_hand})


def catalog(channels: list[str], tier: str = "standard") -> list[dict[str, Any]]:
    """A waits a month (no stock, 30 days' lead time) and B, its configured substitute, is in stock;
    G (a grinder) has no substitute, for partial shipments."""
    return [
        ev("w", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
        ev("pA", "product.upserted", {"sku": "A", "name": "Blue kettle", "price": 40, "lead_time_days": 30,
                                      "category": "kitchen", "substitutes": ["B"]}),
        ev("pB", "product.upserted", {"sku": "B", "name": "Red kettle", "price": 42, "lead_time_days": 30,
                                      "category": "kitchen"}),
        ev("pG", "product.upserted", {"sku": "G", "name": "Coffee grinder", "price": 60, "lead_time_days": 20,
                                      "category": "coffee"}),
        stock("B", 5),
        ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "region": "north", "tier": tier,
                                       "contacts": {"phone": ADA, "whatsapp": ADA, "email": "ada@example.com"},
                                       "preferences": {"channels": channels}}),
        ev("c2", "customer.upserted", {"customer_id": "C2", "name": "Bea", "region": "north", "locale": "es",
                                       "contacts": {"phone": BEA, "whatsapp": BEA},
                                       "preferences": {"channels": ["sms"]}}),
    ]


class Bot(TwilioBot):
    """The Twilio bot with e-mail configured too (`extra`: more settings, signed links say); every batch of
    events must be accepted and leave the store's invariants holding."""

    def __init__(self, ctx: Context, fake: FakeTwilio, **extra: Any) -> None:
        super().__init__(ctx, fake,
                         notify={"rules": {"ops_digest": {"enabled": False}},
                                 "rate_per_destination": {"sms": 100.0, "whatsapp": 100.0}},
                         email={"host": "127.0.0.1"},  # rows are planned for e-mail; these tests never send them
                         **extra)

    def events(self, events: list[dict[str, Any]]) -> None:
        post_events(self.client, events, self.ctx.engine)

    def check(self) -> None:
        invariants_hold(self.ctx.engine)

    def answer(self, number: str) -> str:
        """The body of the last chat answer to `number`."""
        return [r for r in self.rows(kind="chat_reply") if r.recipient == number][-1].body

    def query(self, stmt: Any) -> list[Any]:
        with self.ctx.engine.connect() as conn:
            return list(conn.execute(stmt).all())

    def line(self, order_id: str, line_id: str = "1") -> Any:
        l = t.order_lines
        [row] = self.query(select(l).where(l.c.order_id == order_id, l.c.line_id == line_id))
        return row

    def offers(self, **where: Any) -> list[Any]:
        return self.table_rows(t.substitution_offers, **where)

    def audit(self, action: str) -> list[Any]:
        a = t.audit_log
        return self.query(select(a).where(a.c.action == action).order_by(a.c.id))

    def stock_allocated(self, sku: str) -> int:
        s = t.stock
        [row] = self.query(select(s.c.allocated).where(s.c.sku == sku, s.c.warehouse_id == "LDS"))
        return int(row.allocated)


def text_of(message: Captured) -> str:
    """What the customer reads: the body, or the text variable of a quick-reply template."""
    if "Body" in message.form:
        return message.form["Body"]
    return json.loads(message.form["ContentVariables"])["1"]


def buttons_of(message: Captured) -> list[str]:
    variables = json.loads(message.form["ContentVariables"])
    return [variables[k] for k in sorted(variables, key=int) if k != "1"]


# ---------------------------------------------------------------- the end-to-end acceptance


@pytest.mark.parametrize("tier", ["standard", "gold"])
def test_a_whatsapp_quick_reply_accepts_the_substitute_end_to_end(ctx: Context, fake: FakeTwilio, tier: str) -> None:
    bot = Bot(ctx, fake)
    bot.events(catalog(["whatsapp"], tier))
    bot.wa(ADA, "hello")  # Ada writes first: WhatsApp's 24-hour window is open, buttons may go
    bot.events([order("1042", "C1")])
    [offer] = bot.offers()
    assert (offer.customer_id, offer.sku, offer.substitute_sku, offer.qty, offer.status) == (
        "C1", "A", "B", 2, "offered")

    if tier == "gold":  # drafted: nothing reaches Ada until a person approves it
        assert bot.rows(kind="substitution_offer") == []
        drafts = bot.client.get("/drafts", params={"status": "pending"}).json()
        [draft] = [d for d in drafts if d["kind"] == "substitution_offer"]
        assert draft["customer_id"] == "C1" and draft["order_id"] == "1042"
        # An offer held for approval is not Ada's to take yet, even if she guessed its number.
        bot.wa(ADA, "Accept", button_payload=f"accept_substitute:{offer.id}", button_text="Accept substitute")
        assert bot.line("1042", "1").sku == "A" and bot.offers(id=offer.id)[0].status == "offered"
        r = bot.client.post(f"/drafts/{draft['id']}/approve")
        assert r.status_code == 200, r.text
    [row] = bot.rows(kind="substitution_offer")
    assert (row.channel, row.recipient) == ("whatsapp", ADA)
    assert [(a["id"], a["value"]) for a in row.payload["actions"]] == [
        ("accept_substitute", str(offer.id)), ("decline_substitute", str(offer.id))]
    bot.drain()
    [sent] = [m for m in bot.sent_to(f"whatsapp:{ADA}") if f"accept_substitute:{offer.id}" in m.form.get(
        "ContentVariables", "")]
    assert "Red kettle" in text_of(sent) and "1042" in text_of(sent)
    assert buttons_of(sent) == [f"accept_substitute:{offer.id}", f"decline_substitute:{offer.id}"]
    [made] = [c for c in fake.contents if c.sid == sent.form["ContentSid"]]
    assert [a["title"] for a in made.json["types"]["twilio/quick-reply"]["actions"]] == [  # type: ignore[index]
        "Accept substitute", "No thanks"]
    # Another customer waits for A behind Ada.
    bot.events([ev("c3", "customer.upserted", {"customer_id": "C3", "name": "Cy", "region": "north"}),
                order("2001", "C3")])

    bot.wa(ADA, "Accept substitute", button_payload=buttons_of(sent)[0], button_text="Accept substitute")

    original, new = bot.line("1042", "1"), bot.line("1042", "1-S1")
    assert (original.sku, original.status, original.qty) == ("A", SUBSTITUTED, 0)
    assert (new.sku, new.qty, new.qty_allocated, new.status) == ("B", 2, 2, "allocated")
    assert bot.stock_allocated("B") == 2
    [accepted] = bot.offers(id=offer.id)
    assert accepted.status == "accepted" and accepted.new_line_pk == new.id
    audit = bot.audit("substitution_accepted")
    assert {(a.entity_id, a.after["via"]) for a in audit} == {("1042/1", "whatsapp"), ("1042/1-S1", "whatsapp")}
    assert all(a.actor == "customer:C1" for a in audit)
    assert "Done: order 1042 now gets 2 × Red kettle (B) instead of Blue kettle (A)" in bot.answer(ADA)
    [confirmation] = bot.rows(kind="substitution_confirmed")
    assert (confirmation.channel, confirmation.recipient, confirmation.customer_id) == ("whatsapp", ADA, "C1")

    bot.drain()
    [told] = [m for m in bot.sent_to(f"whatsapp:{ADA}") if "instead of Blue kettle" in text_of(m)
              and "Hello Ada" in text_of(m)]
    assert "Red kettle (B)" in text_of(told) and bot.rows(id=confirmation.id)[0].status == "sent"
    # The original's waiting demand is gone: the next units of A go to Cy, who ordered after Ada.
    bot.events([ev("rA", "inventory.received", {"sku": "A", "warehouse_id": "LDS", "qty": 2})])
    assert bot.line("2001").status == "allocated" and bot.line("1042", "1").status == SUBSTITUTED

    # Pressing again (a stale button): one outcome, said plainly; nothing changes.
    bot.wa(ADA, "Accept substitute", button_payload=buttons_of(sent)[0], button_text="Accept substitute")
    assert f"You already accepted offer {offer.id}" in bot.answer(ADA)
    assert len(bot.rows(kind="substitution_confirmed")) == 1 and bot.stock_allocated("B") == 2


# ---------------------------------------------------------------- SMS keywords


def test_an_sms_swap_with_the_offer_number_accepts(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake)
    bot.events([*catalog(["sms"]), order("1042", "C1")])
    [offer] = bot.offers()
    bot.drain()
    [told] = [m for m in bot.sent_to(ADA) if "SWAP" in m.form["Body"]]
    assert f"Reply SWAP {offer.id} to take it, or KEEP {offer.id}" in told.form["Body"]

    bot.sms(ADA, f"swap {offer.id}.")
    assert bot.line("1042", "1-S1").status == "allocated" and bot.line("1042").status == SUBSTITUTED
    assert bot.offers(id=offer.id)[0].status == "accepted"
    assert bot.answer(ADA).startswith("Done: order 1042 now gets 2 × Red kettle")
    [confirmation] = bot.rows(kind="substitution_confirmed")
    assert (confirmation.channel, confirmation.recipient) == ("sms", ADA)
    bot.drain()
    assert any("B replaces A" in m.form["Body"] or "Red kettle" in m.form["Body"] for m in bot.sent_to(ADA)
               if m.form["Body"] != told.form["Body"] and "Done" not in m.form["Body"])
    assert {a.after["via"] for a in bot.audit("substitution_accepted")} == {"sms"}


def test_keep_declines_and_the_same_substitute_is_not_offered_again(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake)
    bot.events([*catalog(["sms"]), order("1042", "C1")])
    [offer] = bot.offers()
    bot.sms(ADA, "KEEP")  # no number: Ada has exactly one open offer
    assert bot.offers(id=offer.id)[0].status == "declined"
    assert "we keep Blue kettle (A) in order 1042" in bot.answer(ADA)
    assert bot.line("1042").status == "backordered" and bot.stock_allocated("B") == 0
    [declined] = bot.audit("substitution_declined")
    assert declined.entity_id == "1042/1" and declined.after["via"] == "sms"
    assert len(bot.rows(kind="substitution_declined")) == 1

    bot.events([order("1043", "C1")])  # a new backorder of A for Ada: B is not offered again
    assert bot.line("1043").status == "backordered"
    assert len(bot.offers()) == 1
    assert [r.order_id for r in bot.rows(kind="substitution_offer")] == ["1042"]
    bot.sms(ADA, "SWAP")
    assert "no open substitute offers" in bot.answer(ADA) and bot.line("1043").status == "backordered"
    bot.events([order("2001", "C2")])  # Bea was never asked: she is offered B for A
    assert [o.customer_id for o in bot.offers(status="offered")] == ["C2"]


def test_spanish_keywords_and_several_open_offers(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake)
    bot.events([*catalog(["sms"]), order("2001", "C2"), order("2002", "C2")])
    first, second = bot.offers()
    bot.sms(BEA, "cambiar")  # two open offers: which one?
    asked = bot.answer(BEA)
    assert asked.startswith("¿Qué oferta?") and f"CAMBIAR {first.id}" in asked and f"CAMBIAR {second.id}" in asked
    assert {o.status for o in bot.offers()} == {"offered"}
    bot.sms(BEA, f"CAMBIAR {second.id}")
    done = bot.answer(BEA)  # (folded to GSM characters when that keeps an SMS in two segments)
    assert done.startswith("Hecho: su pedido 2002") and "2 x Red kettle (B) en lugar de Blue kettle (A)" in done
    bot.sms(BEA, "Mantener")  # one open offer left
    assert "mantenemos Blue kettle (A) en su pedido 2001" in bot.answer(BEA)
    assert [o.status for o in bot.offers()] == ["declined", "accepted"]


def test_another_customers_offer_is_refused_like_a_missing_one(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake)
    bot.events([*catalog(["whatsapp", "sms"]), order("1042", "C1")])
    [offer] = bot.offers()
    bot.sms(BEA, f"CAMBIAR {offer.id}")
    theirs = bot.answer(BEA)
    bot.sms(BEA, "CAMBIAR 987654")
    missing = bot.answer(BEA)
    assert theirs == f"No encuentro la oferta {offer.id} en su cuenta. ¿Puede comprobar el número?"
    assert missing == theirs.replace(str(offer.id), "987654")
    bot.wa(BEA, "Aceptar sustituto", button_payload=f"accept_substitute:{offer.id}")  # a forged button
    assert bot.answer(BEA) == theirs
    bot.sms(STRANGER, f"SWAP {offer.id}")  # a number we do not know
    assert "can't see an account" in bot.answer(STRANGER)
    assert bot.offers(id=offer.id)[0].status == "offered" and bot.line("1042").status == "backordered"
    assert bot.audit("substitution_accepted") == [] and bot.rows(kind="substitution_confirmed") == []


def test_two_presses_at_once_switch_the_line_once(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake)
    bot.events([*catalog(["whatsapp"]), order("1042", "C1")])
    [offer] = bot.offers()
    start = threading.Barrier(4)

    def press(_: int) -> None:
        start.wait(10)
        bot.wa(ADA, "Accept substitute", button_payload=f"accept_substitute:{offer.id}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(press, range(4)))
    answers = [r.body for r in bot.rows(kind="chat_reply") if r.recipient == ADA]
    assert len(answers) == 4 and sum(a.startswith("Done:") for a in answers) == 1
    assert sum(f"You already accepted offer {offer.id}" in a for a in answers) == 3
    assert len(bot.audit("substitution_accepted")) == 2 and len(bot.rows(kind="substitution_confirmed")) == 1
    assert bot.stock_allocated("B") == 2
    bot.check()


def test_offer_keywords_are_whole_messages() -> None:
    assert keyword("SWAP 12") == ("accept_substitute", "12")
    assert keyword(" keep #12! ") == ("decline_substitute", "12")
    assert keyword("Wait 1042.") == ("wait_all", "1042")
    assert keyword("enviar SO-1042") == ("ship_partial", "SO-1042")
    assert keyword("esperar") == ("wait_all", "")
    for text in ("keep going", "ship it", "wait a minute", "swap 12 please", "where is 1042", "stop", ""):
        assert keyword(text) is None, text


# ---------------------------------------------------------------- e-mail links


def test_an_email_link_accepts_only_after_the_button(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake, links={"public_base_url": LINKS + "/", "secret": SECRET})
    bot.events([*catalog(["email"]), order("1042", "C1")])
    [offer] = bot.offers()
    [mail] = bot.rows(kind="substitution_offer")
    assert mail.channel == "email"
    sig = link_signature(SECRET, "accept", offer.id)
    accept = f"{LINKS}/offers/{offer.id}/accept?sig={sig}"
    decline = f"{LINKS}/offers/{offer.id}/decline?sig={link_signature(SECRET, 'decline', offer.id)}"
    assert accept in mail.body and decline in mail.body
    assert accept.replace("&", "&amp;") in mail.html
    path = f"/offers/{offer.id}/accept"

    for _ in range(2):  # a mail scanner fetching the link, then Ada opening it: nothing changes
        page = bot.client.get(path, params={"sig": sig})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
        assert '<form method="post" action="accept?sig=' + sig + '">' in page.text
        assert "Would you like 2 × Red kettle (B) instead of Blue kettle (A)?" in page.text
    assert bot.offers(id=offer.id)[0].status == "offered" and bot.line("1042").status == "backordered"

    done = bot.client.post(path, params={"sig": sig})
    assert done.status_code == 200 and "Done: order 1042 now gets 2 × Red kettle (B)" in done.text
    assert bot.offers(id=offer.id)[0].status == "accepted" and bot.line("1042", "1-S1").status == "allocated"
    assert {a.after["via"] for a in bot.audit("substitution_accepted")} == {"email"}
    [confirmation] = bot.rows(kind="substitution_confirmed")
    assert (confirmation.channel, confirmation.recipient) == ("email", "ada@example.com")
    # The decline link, now: it says what was decided, and offers no button.
    later = bot.client.get(f"/offers/{offer.id}/decline", params={"sig": link_signature(SECRET, "decline", offer.id)})
    assert later.status_code == 200 and f"You already accepted offer {offer.id}" in later.text
    assert "<form" not in later.text


def test_a_bad_link_signature_is_refused(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake, links={"public_base_url": LINKS, "secret": SECRET}, api_token="operators-token")
    bot.client.headers["Authorization"] = "Bearer operators-token"
    bot.events([*catalog(["email"]), order("1042", "C1")])
    [offer] = bot.offers()
    anonymous = TestClient(bot.client.app)  # a browser: no bearer token, the signature is the authorisation
    good = link_signature(SECRET, "accept", offer.id)
    refused = [
        ("get", f"/offers/{offer.id}/accept", {"sig": good[:-1] + ("0" if good[-1] != "0" else "1")}),
        ("post", f"/offers/{offer.id}/accept", {"sig": link_signature("another-secret", "accept", offer.id)}),
        ("post", f"/offers/{offer.id}/accept", {"sig": link_signature(SECRET, "decline", offer.id)}),  # other verb
        ("post", f"/offers/{offer.id}/accept", {}),
        ("get", f"/offers/{offer.id}/accept", {"sig": good * 5}),
        ("post", f"/offers/{offer.id + 1}/accept", {"sig": good}),  # another offer's id
    ]
    for method, path, params in refused:
        r = getattr(anonymous, method)(path, params=params)
        assert r.status_code == 403 and "This link is not valid" in r.text, (method, path, params)
        assert "Red kettle" not in r.text
    assert bot.offers(id=offer.id)[0].status == "offered" and bot.audit("substitution_accepted") == []
    assert anonymous.get(f"/offers/{offer.id}/accept", params={"sig": good}).status_code == 200
    gone = offer.id + 1000
    assert anonymous.get(f"/offers/{gone}/accept", params={"sig": link_signature(SECRET, "accept", gone)}
                         ).status_code == 404
    declined = anonymous.post(f"/offers/{offer.id}/decline",
                              params={"sig": link_signature(SECRET, "decline", offer.id)})
    assert declined.status_code == 200 and "we keep Blue kettle (A) in order 1042" in declined.text
    assert bot.offers(id=offer.id)[0].status == "declined"


def test_without_links_configured_the_email_asks_for_a_reply_and_no_route_answers(ctx: Context,
                                                                                   fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake)
    bot.events([*catalog(["email"]), order("1042", "C1")])
    [offer] = bot.offers()
    [mail] = bot.rows(kind="substitution_offer")
    assert "/offers/" not in mail.body and f"SWAP {offer.id}" in mail.body
    assert bot.client.get(f"/offers/{offer.id}/accept", params={"sig": "x"}).status_code == 404
    with pytest.raises(ValidationError, match=r"links\.secret"):
        load_settings(links={"public_base_url": LINKS})


# ---------------------------------------------------------------- partial shipments


def partial_order(order_id: str, customer: str) -> dict[str, Any]:
    return order(order_id, customer, "G", 5)


def test_wait_releases_held_units_to_others_and_a_second_answer_is_told_the_first(ctx: Context,
                                                                                  fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake)
    bot.events([*catalog(["sms"]), stock("G", 2), partial_order("1050", "C1"), order("2001", "C2", "G", 2)])
    held = bot.line("1050")
    assert (held.status, held.qty_allocated) == ("partially_allocated", 2)
    assert bot.line("2001").status == "backordered"
    [offer_row] = bot.rows(kind="partial_shipment_offer")
    assert "Reply SHIP 1050" in offer_row.body and "WAIT 1050" in offer_row.body

    bot.sms(ADA, "WAIT 1050")
    line = bot.line("1050")
    assert (line.status, line.qty_allocated) == ("backordered", 0)
    assert bot.line("2001").status == "allocated"  # Bea gets the units Ada no longer holds
    with ctx.engine.connect() as conn:
        assert conn.execute(select(t.orders.c.ship_complete).where(t.orders.c.order_id == "1050")).scalar_one()
    [chosen] = bot.audit("partial_shipment_chosen")
    assert (chosen.entity, chosen.entity_id, chosen.actor) == ("order", "1050", "customer:C1")
    assert chosen.after == {"ship_complete": True, "choice": "wait_all", "via": "sms", "released": 2}
    assert bot.answer(ADA) == "Done: we will send order 1050 in one shipment, once everything is here."
    [confirmation] = bot.rows(kind="partial_shipment_confirmed")
    assert (confirmation.channel, confirmation.recipient) == ("sms", ADA)
    assert confirmation.facts["choice"] == "wait_all" and confirmation.facts["order"] == {"id": "1050"}
    bot.check()

    bot.sms(ADA, "SHIP 1050")  # changed her mind: told what she chose before, nothing changes
    assert bot.answer(ADA).startswith("You already chose for order 1050")
    assert "send everything together" in bot.answer(ADA)
    assert len(bot.rows(kind="partial_shipment_confirmed")) == 1 and len(bot.audit("partial_shipment_chosen")) == 1
    bot.drain()
    assert any("ships complete" in m.form["Body"] or "one shipment" in m.form["Body"] for m in bot.sent_to(ADA)
               if "Done" not in m.form["Body"])

    # The order completes all at once when enough arrives.
    bot.events([ev("rG", "inventory.received", {"sku": "G", "warehouse_id": "LDS", "qty": 5})])
    assert bot.line("1050").status == "allocated"


def test_ship_now_by_button_and_without_a_number(ctx: Context, fake: FakeTwilio) -> None:
    bot = Bot(ctx, fake)
    bot.events([*catalog(["whatsapp", "sms"]), stock("G", 4), partial_order("1050", "C1"),
                partial_order("1051", "C1")])
    assert bot.line("1050").qty_allocated == 4 and bot.line("1051").status == "backordered"
    bot.sms(ADA, "ship")  # 1050 is the one order in question (1051 holds nothing)
    assert bot.answer(ADA) == "Done: we will send what is ready in order 1050 now, and the rest as it arrives."
    assert bot.line("1050").qty_allocated == 4 and bot.stock_allocated("G") == 4
    [chosen] = bot.audit("partial_shipment_chosen")
    assert chosen.after["choice"] == "ship_now" and chosen.after["ship_complete"] is False

    bot.wa(ADA, "Wait for all", button_payload="wait_all:1051")  # nothing held: it only makes it ship complete
    assert bot.answer(ADA) == "Done: we will send order 1051 in one shipment, once everything is here."
    assert [c.facts["choice"] for c in bot.rows(kind="partial_shipment_confirmed")] == ["ship_now", "wait_all"]
    bot.sms(BEA, "ESPERAR 1050")  # not hers
    assert bot.answer(BEA) == "No encuentro el pedido 1050 en su cuenta. ¿Puede comprobar el número?"
    bot.sms(ADA, "WAIT")  # nothing left in question
    assert bot.answer(ADA) == "None of your orders is waiting for that choice right now."
    assert len(bot.audit("partial_shipment_chosen")) == 2
    bot.check()
