"""The grounding check: what a draft states must be in its facts, and our own template texts pass it."""

from __future__ import annotations

from typing import Any

import pytest

from drafting.grounding import Problem, check, printed
from notifiers.render import render_notice


def kettle(**over: Any) -> dict[str, Any]:
    it = {"line_id": "1", "sku": "KTL-200", "name": "Blue kettle", "qty": 3, "qty_allocated": 1, "qty_shipped": 0,
          "waiting": 2, "status": "partially_allocated", "eta": "2027-03-09", "eta_reason": "po:PO-7",
          "previous_eta": "2027-03-03", "unit_price": 40.0}
    return {**it, **over}


def panel() -> dict[str, Any]:
    """A name full of digits, no date, no source: the numbers of the name are the product's, not quantities."""
    return {"line_id": "2", "sku": "LED-6060", "name": "LED Panel 60×60 cm Neutral White 4000 K", "qty": 4,
            "qty_allocated": 0, "qty_shipped": 0, "waiting": 4, "status": "backordered", "eta": None,
            "eta_reason": "no_inbound_po_and_no_lead_time", "previous_eta": None, "unit_price": 1234.5}


def make_facts(locale: str = "en", items: list[dict[str, Any]] | None = None, **over: Any) -> dict[str, Any]:
    return {
        "customer": {"id": "C1", "name": "Ada Lovelace", "tier": "gold", "locale": locale,
                     "timezone": "America/Mexico_City", "email": "ada@example.com", "phone": "+15550100123"},
        "order": {"id": "1042", "placed_at": "2027-02-20T16:30:00", "promised_date": "2027-03-01", "value": 1354.5},
        "items": items if items is not None else [kettle()],
        "offer": {"id": 7, "line_id": "1", "name": "Blue kettle", "sku": "KTL-200", "qty": 2, "price": 40.0,
                  "substitute_name": "Red kettle", "substitute_sku": "KTL-210", "substitute_price": 44.0,
                  "available_on": "2027-03-04", "accept_url": "https://shop.example/o/7/accept?t=abc",
                  "decline_url": "https://shop.example/o/7/decline?t=abc"},
        "shipment": {"carrier": "UPS", "tracking": "1Z999AA10123456784",
                     "tracking_url": "https://ups.example/t?n=1Z999AA10123456784"},
        "today": "2027-03-06", "days_late": 5,
        "history": [{"kind": "backorder_created", "sent_at": "2027-02-20T16:31:00+00:00", "channel": "email"}],
        **over,
    }


FACTS = make_facts()


def kinds_of(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.kind, p.value) for p in problems]


# -- our own texts: no false alarms ------------------------------------------------------------------------------

TEMPLATE_KINDS = ["backorder_created", "eta_changed", "delay_overdue", "substitution_offer", "partial_shipment_offer",
                  "question_reply", "allocated", "shipped", "backorder_cancelled", "substitution_confirmed",
                  "substitution_declined", "partial_shipment_confirmed"]
ITEM_SETS = {"one line": [kettle()], "two lines": [kettle(), panel()],
             "shipped": [kettle(status="shipped", qty_allocated=3, qty_shipped=3, waiting=0, eta=None)]}


def notice_facts(kind: str, locale: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    f = make_facts(locale, items)
    shipment = f.pop("shipment")
    if kind == "shipped":
        f.update(shipment)
    if kind == "partial_shipment_confirmed":
        f["choice"] = "ship_now"
    return f


@pytest.mark.parametrize("locale", ["en", "es", "es-MX", "en-GB"])
@pytest.mark.parametrize("channel", ["email", "sms", "whatsapp", "console"])
@pytest.mark.parametrize("kind", TEMPLATE_KINDS)
@pytest.mark.parametrize("items", list(ITEM_SETS), ids=list(ITEM_SETS))
def test_the_template_texts_pass_their_own_check(kind: str, channel: str, locale: str, items: str) -> None:
    facts = notice_facts(kind, locale, ITEM_SETS[items])
    notice = render_notice(kind, channel, locale, facts)
    for text in (notice.body, notice.subject or ""):
        assert check(text, facts, locale) == [], text
    assert notice.body  # something was checked


# -- dates ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "now expected March 9, 2027", "now expected Mar 9, 2027", "now expected on March 9th",
    "arriving Tuesday, March 9, 2027", "arriving Tue, Mar 9", "arriving on 9 March 2027", "the 9th of March",
    "ETA 2027-03-09", "ETA 3/9/2027", "ETA 3/9/27", "ETA 3/9", "some time in March 2027",
    "placed Feb 20, 2027, 10:30 AM",  # the order's time in the customer's zone, as our notices print it
])
def test_english_dates_from_the_facts_pass(text: str) -> None:
    assert check(text, FACTS, "en") == []


@pytest.mark.parametrize(("text", "value", "reason"), [
    ("now expected March 10, 2027", "March 10, 2027", "not a date in the facts"),
    ("now expected Mar 9, 2026", "Mar 9, 2026", "not a date in the facts"),
    ("arriving Monday, March 9, 2027", "Monday, March 9, 2027", "the weekday does not match the date"),
    ("ETA 9/3/2027", "9/3/2027", "not a date in the facts"),  # September 3 to an American reader
    ("ETA 2027-03-19", "2027-03-19", "not a date in the facts"),
    ("ships in April 2027", "April 2027", "no date in the facts falls in that month"),
    ("delivered by 5 pm", "5 pm", "time not in the facts"),
])
def test_english_dates_not_in_the_facts_are_caught(text: str, value: str, reason: str) -> None:
    assert [p.as_dict() for p in check(text, FACTS, "en")] == [{"kind": "date", "value": value, "reason": reason}]


@pytest.mark.parametrize("text", [
    "llegada prevista el 9 de marzo de 2027", "llegada prevista: 9 mar 2027", "el martes, 9 de marzo de 2027",
    "llegará el 9 de marzo", "nueva fecha: 9/3/2027", "nueva fecha: 9/3/27", "en marzo de 2027",
    "(antes: 3 mar 2027)", "el 4 de marzo", "el 09.03.2027",
])
def test_spanish_dates_from_the_facts_pass(text: str) -> None:
    assert check(text, make_facts("es"), "es") == []


@pytest.mark.parametrize(("text", "value"), [
    ("llegará el 10 de marzo de 2027", "10 de marzo de 2027"),
    ("llegará el lunes 9 de marzo", "lunes 9 de marzo"),
    ("nueva fecha: 3/9/2027", "3/9/2027"),  # 3 de septiembre para un lector en español
    ("llegada prevista: 19 mar 2027", "19 mar 2027"),
])
def test_spanish_dates_not_in_the_facts_are_caught(text: str, value: str) -> None:
    assert [(p.kind, p.value) for p in check(text, make_facts("es"), "es")] == [("date", value)]


def test_numbers_inside_a_matched_date_are_not_quantities() -> None:
    # 9, 3 and 2027 would each be a problem as a quantity (no line has 9 units): only the date speaks.
    assert check("2 × Blue kettle, now 9 March 2027 (was 3 March)", FACTS, "en") == []


# -- quantities -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "2 × Blue kettle (KTL-200)", "2x Blue kettle", "the 2 Blue kettles still on the way",
    "we can ship the 1 kettle we have now", "all 3 units of the Blue kettle", "1 more already reserved",
    "your order is 5 days late", "6 days later than we said",  # Mar 3 -> Mar 9
    "in 3 days", "2 weeks after you ordered", "Reply SWAP 7 to take it",
])
def test_quantities_from_the_facts_pass(text: str) -> None:
    assert check(text, FACTS, "en") == []


@pytest.mark.parametrize(("text", "value", "reason"), [
    ("5 × Blue kettle (KTL-200)", "5", "quantity for KTL-200 not in the facts"),
    ("4 units of the Blue kettle", "4", "quantity for KTL-200 not in the facts"),
    ("we have 12 ready for you", "12", "number not in the facts"),
    ("we have 4 ready for you", "4", "number not in the facts"),  # $4.00 is a price difference, not a count
    ("only 10 days late", "10", "number of days not in the facts"),
    ("in 6 weeks", "6", "number of weeks not in the facts"),
    ("take 20% off", "20%", "percentage not in the facts"),
])
def test_quantities_not_in_the_facts_are_caught(text: str, value: str, reason: str) -> None:
    assert [p.as_dict() for p in check(text, FACTS, "en")] == [{"kind": "quantity", "value": value, "reason": reason}]


def test_a_line_with_a_name_full_of_digits() -> None:
    facts = make_facts(items=[kettle(), panel()])
    assert check("4 × LED Panel 60×60 cm Neutral White 4000 K are waiting; 4000 K light", facts, "en") == []
    assert kinds_of(check("3 × LED Panel 60×60 cm Neutral White 4000 K", facts, "en")) == [("quantity", "3")]


# -- prices -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "locale"), [
    ("at $40.00 each", "en"), ("USD 40", "en"), ("$80.00 for the two waiting", "en"), ("$120 in all", "en"),
    ("the Red kettle costs $4.00 more", "en"), ("10% more", "en"), ("a 1,354.50 order", "en"),
    ("40,00 € cada uno", "es"), ("EUR 40.00", "es"), ("un pedido de 1.354,50 €", "es"), ("1354,50 €", "es"),
])
def test_prices_from_the_facts_pass(text: str, locale: str) -> None:
    assert check(text, make_facts(locale, items=[kettle(), panel()]), locale) == []


@pytest.mark.parametrize(("text", "locale", "value"), [
    ("at $39.99 each", "en", "$39.99"), ("now only 35 dollars", "en", "35 dollars"),
    ("por 12,50 €", "es", "12,50 €"), ("EUR 41", "es", "EUR 41"),
])
def test_prices_not_in_the_facts_are_caught(text: str, locale: str, value: str) -> None:
    assert kinds_of(check(text, make_facts(locale), locale)) == [("price", value)]


def test_a_price_in_another_currency_is_caught() -> None:
    facts = make_facts(currency="EUR")
    assert check("40,00 € each", facts, "es") == []
    assert [p.reason for p in check("$40.00 each", facts, "en")] == ["currency is not EUR"]


# -- SKUs and order numbers -------------------------------------------------------------------------------------

def test_skus_and_codes() -> None:
    assert check("Blue kettle (KTL-200) or Red kettle (KTL-210); tracking 1Z999AA10123456784", FACTS, "en") == []
    assert kinds_of(check("the KTL-201 instead", FACTS, "en")) == [("sku", "KTL-201")]
    assert kinds_of(check("use code FREE100 today", FACTS, "en")) == [("sku", "FREE100")]
    assert kinds_of(check("use code Free100 today", FACTS, "en")) == [("sku", "Free100")]
    assert check("an 18V drill, 5mm bolts", make_facts(items=[kettle(name="18V drill with 5mm bolts")]), "en") == []


@pytest.mark.parametrize("text", ["order #1042", "your order 1042", "Order no. 1042", "pedido 1042",
                                  "su pedido número 1042", "order #1042 and its 2 kettles"])
def test_order_numbers_from_the_facts_pass(text: str) -> None:
    assert check(text, FACTS, "en") == []


@pytest.mark.parametrize(("text", "value"), [
    ("order #1043", "order #1043"), ("see #1043", "#1043"), ("your order 1043", "order 1043"),
    ("pedido número 1043", "pedido número 1043"), ("#SO-9", "#SO-9"),
])
def test_order_numbers_not_in_the_facts_are_caught(text: str, value: str) -> None:
    assert kinds_of(check(text, FACTS, "en")) == [("order", value)]


def test_an_order_number_written_like_ours_is_an_order_problem() -> None:
    facts = make_facts(order={"id": "SO-1042", "placed_at": "2027-02-20", "promised_date": None, "value": 80.0})
    assert check("order SO-1042 (SO-1042)", facts, "en") == []
    assert kinds_of(check("see SO-1043", facts, "en")) == [("order", "SO-1043")]


# -- links and contacts -----------------------------------------------------------------------------------------

def test_links_and_contacts_in_the_facts_pass() -> None:
    text = ("Track it at https://ups.example/t?n=1Z999AA10123456784. Accept: https://shop.example/o/7/accept?t=abc "
            "We will write to ada@example.com or call +1 555 010 0123.")
    assert check(text, FACTS, "en") == []


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("claim it at http://evil.example", "link", "http://evil.example"),
    ("see https://shop.example/o/7/accept?t=forged", "link", "https://shop.example/o/7/accept?t=forged"),
    ("go to evil.example/claim now", "link", "evil.example/claim"),
    ("visit www.evil.example!", "link", "www.evil.example"),
    ("short link bit.ly/x1", "link", "bit.ly/x1"),
    ("write to refunds@evil.example", "contact", "refunds@evil.example"),
    ("call +1 (555) 010-0199", "contact", "+1 (555) 010-0199"),
    ("llame al 555 010 0199", "contact", "555 010 0199"),
])
def test_links_and_contacts_not_in_the_facts_are_caught(text: str, kind: str, value: str) -> None:
    assert kinds_of(check(text, FACTS, "en")) == [(kind, value)]


def test_an_obedient_injected_draft_is_caught_on_every_count() -> None:
    text = ("Good news Ada: your order 1042 has shipped! As a thank-you, use code FREE100 at http://evil.example "
            "for 100% off, or call 1-800-555-0199.")
    assert {p.kind for p in check(text, FACTS, "en")} == {"link", "sku", "quantity", "contact"}


# -- good drafts, as a model writes them ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "locale"), [
    ("Hi Ada, I'm so sorry: the 2 Blue kettles (KTL-200) in your order #1042 are now expected on Mar 9, 2027, "
     "6 days later than we told you (Mar 3, 2027). As one of our gold customers you deserve better. "
     "If you like, we can ship the 1 kettle that is ready now.", "en"),
    ("Hola, Ada: lamentamos que su pedido 1042 lleve 5 días de retraso. Los 2 Blue kettle (KTL-200) llegarán "
     "el 9 mar 2027. También podemos enviarle ya la unidad lista. Gracias por su paciencia.", "es"),
    ("Ada, the Red kettle (KTL-210) can reach you on March 4, 2027 instead of March 9: it is $44.00, "
     "$4.00 more than the Blue kettle, and we keep your price of $40.00.", "en"),
])
def test_a_good_draft_has_no_problems(text: str, locale: str) -> None:
    assert check(text, make_facts(locale), locale) == []


def test_the_customers_words_never_ground_a_draft() -> None:
    # The facts ground a draft; a customer who writes a link or code does not make it a fact.
    assert kinds_of(check("see http://evil.example", FACTS, "en")) == [("link", "http://evil.example")]


def test_problems_describe_themselves_for_the_retry() -> None:
    [p] = check("now expected March 10, 2027", FACTS, "en")
    assert p.describe() == 'date "March 10, 2027": not a date in the facts'


def test_printed_dates_and_amounts_follow_our_notices() -> None:
    en, es = printed(FACTS, "en"), printed(FACTS, "es")
    assert en["dates"]["2027-03-09"] == "Mar 9, 2027" and es["dates"]["2027-03-09"] == "9 mar 2027"
    assert en["money"]["1354.5"] == "1,354.50" and es["money"]["1354.5"] == "1.354,50"
    assert en["dates"]["2027-02-20T16:30:00"] == "Feb 20, 2027"  # the reader's day of a datetime
