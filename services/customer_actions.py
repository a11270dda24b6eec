"""A customer's answer to an offer, from whichever channel it came: a WhatsApp quick-reply button, an SMS
keyword (SWAP 12, KEEP 12, SHIP 1042, WAIT 1042, or CAMBIAR, MANTENER, ENVIAR, ESPERAR), a chat button, or
a signed link in an e-mail (bot/offer_links.py).

    accept_substitute / decline_substitute   value: the substitution offer's id  -> services.substitutions
    ship_partial / wait_all                  value: the order's id               -> services.partial

The offer or order must be the customer's own: one that is not gets the same answer as one that does not
exist, so a guessed number reveals nothing. Without a number, the one offer (or order) in question is
meant; with several, the answer asks which. What changed, the audit rows and the customer's confirmation
(substitution_confirmed, partial_shipment_confirmed) are written by those services in one unit of work;
this module only chooses the answer: a chat template under prompts/chat/<locale>/ and its facts
(services.chat renders it in the channel's style).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from backorder.config import Settings
from services import partial
from services import substitutions as subs
from services.context import Context
from store import tables as t

OFFER_ACTIONS = {"accept_substitute": "accept", "decline_substitute": "decline"}
PARTIAL_ACTIONS: dict[str, partial.Choice] = {"ship_partial": "ship_now", "wait_all": "wait_all"}
ACTIONS = frozenset(OFFER_ACTIONS) | frozenset(PARTIAL_ACTIONS)

# Reply keywords, English and Spanish (prompts/notify/*/_lib.j2 tells customers which to send).
KEYWORDS = {"swap": "accept_substitute", "cambiar": "accept_substitute",
            "keep": "decline_substitute", "mantener": "decline_substitute",
            "ship": "ship_partial", "enviar": "ship_partial",
            "wait": "wait_all", "esperar": "wait_all"}
_KEYWORD = re.compile(r"^\s*(\w+)(?:\s+#?(\S+?))?\s*[.!]?\s*$")
MAX_OFFER_ID = 2**63 - 1  # a BIGINT: a larger number cannot name an offer
MAX_ORDER_ID = 100


@dataclass(frozen=True)
class Outcome:
    """The answer to give: a template of prompts/chat/<locale>/ and the facts it prints."""

    template: str
    facts: dict[str, Any] = field(default_factory=dict)
    entities: dict[str, Any] = field(default_factory=dict)


def keyword(text: str) -> tuple[str, str] | None:
    """(action, value) when the whole message is an offer keyword with an optional number: "SWAP 12",
    "keep", "Wait 1042.", "enviar #1042". Anything else (e.g. "keep going", "ship it") is not one."""
    m = _KEYWORD.match(text or "")
    if m is None:
        return None
    action = KEYWORDS.get(m.group(1).casefold())
    if action is None:
        return None
    value = m.group(2) or ""
    if action in OFFER_ACTIONS and value and not value.isdigit():
        return None
    if action in PARTIAL_ACTIONS and value and not any(ch.isdigit() for ch in value):
        return None
    return action, value


def handle(ctx: Context, customer_id: str | None, action: str, value: str, channel: str) -> Outcome:
    """Act on the customer's answer and say what happened. `customer_id` None (not a customer of ours)
    finds nothing: only the signed e-mail link (decide_by_link) acts without one."""
    if action not in ACTIONS:
        raise ValueError(f"unknown customer action {action!r}")
    value = (value or "").strip().lstrip("#")
    if action in OFFER_ACTIONS:
        return _answer_offer(ctx, customer_id, action, value, channel)
    return _answer_partial(ctx, customer_id, action, value, channel)


# -- substitution offers ---------------------------------------------------------------------------


def _offer_id(value: str) -> int | None:
    if value.isdigit() and len(value) <= 19 and 0 < int(value) <= MAX_OFFER_ID:
        return int(value)
    return None


def open_offers(conn: Connection, customer_id: str) -> list[dict[str, Any]]:
    o = t.substitution_offers
    rows = conn.execute(select(o.c.id).where(o.c.customer_id == customer_id, o.c.status == "offered")
                        .order_by(o.c.id)).scalars().all()
    return [v for v in (offer_view(conn, i) for i in rows) if v is not None]


def offer_view(conn: Connection, offer_id: int) -> dict[str, Any] | None:
    """The offer as the customer's answers and pages show it (names of both products, who, status)."""
    o, p, c = t.substitution_offers, t.products, t.customers
    row = conn.execute(select(o).where(o.c.id == offer_id)).first()
    if row is None:
        return None
    names = dict(conn.execute(select(p.c.sku, p.c.name).where(p.c.sku.in_({row.sku, row.substitute_sku})))
                 .tuples().all())
    locale = conn.execute(select(c.c.locale).where(c.c.customer_id == row.customer_id)).scalar()
    return {"id": row.id, "order_id": row.order_id, "line_id": row.line_id, "customer_id": row.customer_id,
            "sku": row.sku, "name": names.get(row.sku, row.sku), "substitute_sku": row.substitute_sku,
            "substitute_name": names.get(row.substitute_sku, row.substitute_sku), "qty": row.qty,
            "status": row.status, "decided_on": _day(row.decided_at), "locale": locale or "en"}


def _day(at: datetime | None) -> str | None:
    return at.date().isoformat() if at is not None else None


def _answer_offer(ctx: Context, customer_id: str | None, action: str, value: str, channel: str) -> Outcome:
    if customer_id is None:  # staff: no offers of their own
        return Outcome("offer_unknown", {"offer_id": value[:20]}) if value else \
            Outcome("which_offer", {"offers": [], "action": action})
    if not value:
        with ctx.engine.connect() as conn:
            offers = open_offers(conn, customer_id)
        if len(offers) != 1:
            return Outcome("which_offer", {"offers": offers, "action": action})
        offer_id: int | None = offers[0]["id"]
    else:
        offer_id = _offer_id(value)
    if offer_id is None:
        return Outcome("offer_unknown", {"offer_id": value[:20]})
    return decide_offer(ctx, offer_id, OFFER_ACTIONS[action], customer_id=customer_id, via=channel,
                        actor=f"customer:{customer_id}")


def decide_offer(ctx: Context, offer_id: int, verb: str, *, customer_id: str | None, via: str,
                 actor: str) -> Outcome:
    """Accept or decline through services.substitutions; `customer_id` None: the caller has checked who
    may (a signed link)."""
    decide = subs.accept if verb == "accept" else subs.decline
    entities = {"offer_id": offer_id}
    if not _was_sent(ctx, offer_id):  # held for approval (or refused): the customer never saw it
        return Outcome("offer_unknown", {"offer_id": offer_id}, entities)
    try:
        summary = decide(ctx, offer_id, customer_id=customer_id, via=via, actor=actor)
    except subs.UnknownOffer:
        return Outcome("offer_unknown", {"offer_id": offer_id}, entities)
    except subs.OfferClosed as exc:
        with ctx.engine.connect() as conn:
            view = offer_view(conn, offer_id) or {"id": offer_id}
        view.update(status=exc.status, decided_on=_day(exc.decided_at))
        return Outcome("offer_closed", {"offer": view}, entities)
    with ctx.engine.connect() as conn:
        view = offer_view(conn, offer_id)
    assert view is not None
    if verb == "decline":
        return Outcome("offer_declined", {"offer": view}, entities)
    new_line = summary.get("new_line") or {}
    ready = bool(new_line) and new_line.get("qty_allocated", 0) >= new_line.get("qty", 0)
    return Outcome("offer_accepted", {"offer": view, "qty": summary["qty"], "ready": ready,
                                      "available_on": summary.get("available_on")}, entities)


def _was_sent(ctx: Context, offer_id: int) -> bool:
    """An offer a draft stands for is the customer's to answer only once that draft was approved."""
    d = t.drafts
    with ctx.engine.connect() as conn:
        held = conn.execute(select(d.c.id).where(d.c.offer_id == offer_id,
                                                 d.c.status != "approved")).first()
    return held is None


# -- partial shipments -----------------------------------------------------------------------------


def _answer_partial(ctx: Context, customer_id: str | None, action: str, value: str, channel: str) -> Outcome:
    if customer_id is None:  # staff: no orders of their own
        return Outcome("no_such_order", {"order_id": value[:MAX_ORDER_ID]}) if value else \
            Outcome("which_partial", {"orders": [], "action": action})
    if not value:
        with ctx.engine.connect() as conn:
            orders = partial.open_choices(conn, customer_id)
        if len(orders) != 1:
            return Outcome("which_partial", {"orders": orders, "action": action})
        value = orders[0]
    order_id = value[:MAX_ORDER_ID]
    entities = {"order_id": order_id}
    choice = PARTIAL_ACTIONS[action]
    try:
        done = partial.choose(ctx, order_id, customer_id, choice, via=channel, actor=f"customer:{customer_id}")
    except partial.UnknownOrder:
        return Outcome("no_such_order", {"order_id": order_id}, entities)
    except partial.NothingWaiting:
        return Outcome("partial_nothing_waiting", {"order_id": order_id}, entities)
    except partial.AlreadyChosen as exc:
        return Outcome("partial_already", {"order_id": order_id, "choice": exc.choice, "decided_on": _day(exc.at)},
                       entities)
    return Outcome("partial_chosen", {"order_id": order_id, "choice": choice, "released": done["released"]},
                   entities)


# -- signed links in e-mails -----------------------------------------------------------------------

VERBS = ("accept", "decline")


def link_signature(secret: str, verb: str, offer_id: int) -> str:
    """HMAC-SHA256 of "<verb>:<offer id>", hex: an accept link cannot be turned into a decline one."""
    return hmac.new(secret.encode(), f"{verb}:{offer_id}".encode(), hashlib.sha256).hexdigest()


def offer_links(settings: Settings, offer_id: int) -> dict[str, str] | None:
    """{"accept_url", "decline_url"} of an offer, or None when [links] is not configured."""
    links = settings.links
    if not links.public_base_url or links.secret is None:
        return None
    secret = links.secret.get_secret_value()
    base = f"{links.public_base_url}/offers/{offer_id}"
    return {f"{verb}_url": f"{base}/{verb}?sig={link_signature(secret, verb, offer_id)}" for verb in VERBS}


def link_valid(settings: Settings, verb: str, offer_id: int, sig: str | None) -> bool:
    links = settings.links
    if links.secret is None or verb not in VERBS or not sig or len(sig) > 256:
        return False
    expected = link_signature(links.secret.get_secret_value(), verb, offer_id)
    return hmac.compare_digest(expected.encode(), sig.strip().lower().encode("utf-8", "replace"))
