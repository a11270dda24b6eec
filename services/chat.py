"""Chat: who is asking, what they mean, and the answer from the store, scoped to them.

Every channel (POST /chat now; Slack, Teams, WhatsApp and SMS later) calls `reply()`. A customer
only ever sees their own orders: an order that is not theirs gets the same answer as one that does
not exist, so a guess reveals nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, String, cast, func, select, update

from intake.fields import e164
from intents import Asker, Catalog, Understanding, llm, preferences, understand
from intents.entities import fold
from intents.model import UNKNOWN, Named
from notifiers import sms
from notifiers.adaptive_cards import escape_markdown
from prompts import TEMPLATE_DIR, render
from services import conversations, customer_actions, offers
from services.chat_staff import STAFF_HANDLERS
from services.context import Context
from services.notifications import RowBuilder
from services.reads import get_order
from services.subscriptions import subscribe_in
from services.tasks import open_task
from store import tables as t
from store.allocation_io import WAITING_STATUSES as WAITING
from store.db import unit_of_work

CATALOG_TTL_S = 30.0


@dataclass(frozen=True)
class ChatUser:
    """How a front door names the asker: a known customer or staff member, or a phone/e-mail to look up."""

    customer_id: str | None = None
    staff_id: str | None = None
    roles: frozenset[str] = frozenset()
    phone: str | None = None
    email: str | None = None
    warehouse_id: str | None = None  # a staff member's own warehouse, where one is linked
    # False for a Slack or Teams account no staff member is linked to: it is told how to get linked and
    # sees nothing else, unless [staff] unlinked_read lets every account of the workspace read.
    linked: bool = True


@dataclass
class Asking:
    """The asker, resolved: a customer of ours, staff, or a stranger."""

    kind: str  # customer | staff | stranger | unlinked
    channel: str = "web"
    customer_id: str | None = None
    staff_id: str | None = None
    locale: str = "en"
    roles: frozenset[str] = frozenset()


@dataclass
class ChatReply:
    intent: str
    entities: dict[str, Any]
    reply: str
    data: dict[str, Any] = field(default_factory=dict)
    template: str = ""


def catalog(conn: Connection, cache: dict[str, Any]) -> Catalog:
    """Products, warehouses and suppliers to match names against; re-read at most every 30 s."""
    cached = cache.get("chat.catalog")
    if cached is not None and time.monotonic() - cached[0] < CATALOG_TTL_S:
        return cached[1]
    p, w, s = t.products, t.warehouses, t.suppliers
    made = Catalog(
        products=tuple(Named(r.sku, r.name) for r in conn.execute(select(p.c.sku, p.c.name).order_by(p.c.sku))),
        warehouses=tuple(Named(r.warehouse_id, r.name) for r in conn.execute(select(w.c.warehouse_id, w.c.name))),
        suppliers=tuple(Named(r.supplier_id, r.name) for r in conn.execute(select(s.c.supplier_id, s.c.name))),
    )
    cache["chat.catalog"] = (time.monotonic(), made)
    return made


def identify(conn: Connection, user: ChatUser) -> Asking:
    if user.staff_id is not None:
        return Asking("staff", staff_id=user.staff_id, roles=user.roles)
    c = t.customers
    if user.customer_id is not None:
        row = conn.execute(select(c.c.customer_id, c.c.locale).where(c.c.customer_id == user.customer_id)).first()
        if row is None:
            return Asking("stranger")
        return Asking("customer", customer_id=row.customer_id, locale=row.locale or "en")
    wanted = e164(user.phone, strict=False) if user.phone else (user.email or "").strip().casefold()
    if not wanted:
        return Asking("stranger")
    # The JSON text must contain the address: the database narrows the rows, Python checks the field.
    candidates = select(c.c.customer_id, c.c.locale, c.c.contacts).where(
        func.lower(cast(c.c.contacts, String)).contains(wanted.lstrip("+"), autoescape=True))
    for row in conn.execute(candidates):
        contacts = row.contacts or {}
        if wanted in (contacts.get("phone"), contacts.get("whatsapp"), (contacts.get("email") or "").casefold()):
            return Asking("customer", customer_id=row.customer_id, locale=row.locale or "en")
    return Asking("stranger")


def reply(ctx: Context, user: ChatUser, text: str, channel: str = "web") -> ChatReply:
    """Understand `text` from `user` and answer it from the store.

    Reads first (who is asking, the catalog, the last turn); then, only if the rules found nothing
    and an LLM is configured, asks it, outside any transaction; then answers in one unit of work
    (an answer may write: a subscription, an opt-out, the conversation state).
    """
    with ctx.engine.connect() as conn:
        asking, key, state = _asker(conn, ctx, user, channel)
        if asking.kind == "unlinked":
            return _unlinked(asking)
        cat = catalog(conn, ctx.cache)
    audience = "staff" if asking.kind == "staff" else "customer"
    u = follow_up(understand(text, cat, Asker(audience, ctx.today())), state, text)
    if u.intent == UNKNOWN and ctx.settings.llm.enabled:
        u = llm.ask(text, audience, cat, ctx.settings.llm, ctx.today()) or u
    return _respond(ctx, asking, key, u, text)


# Buttons on cards and quick replies (notifiers/render.py's card actions): action id -> (intent, entity its value is).
ACTIONS: dict[str, tuple[str, str | None]] = {
    "show_waiting": ("waiting_on_sku", "sku"),
    "open_task": ("open_tasks", "task_id"),
    "complete_task": ("complete_task", "task_id"),
    "show_backorders": ("backorders_query", None),
    "order_status": ("order_status", "order_id"),
    "handoff": ("handoff", None),
}


def act(ctx: Context, user: ChatUser, action: str, value: str, channel: str = "web") -> ChatReply:
    """Answer a button press as the question it stands for, through the same scoped handlers as text.

    The value comes back from the chat app, so it is checked like typed text would be: an order
    number that is not the customer's gets "can't find", a task the staff member may not close stays open.
    """
    if action in customer_actions.ACTIONS:
        return _customer_action(ctx, user, action, value, channel)
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    intent, entity = ACTIONS[action]
    entities: dict[str, Any] = {}
    if entity is not None and value not in ("", "-", "all"):
        entities[entity] = int(value) if entity == "task_id" and value.isdigit() else value
    with ctx.engine.connect() as conn:
        asking, key, _ = _asker(conn, ctx, user, channel)
    if asking.kind == "unlinked":
        return _unlinked(asking)
    return _respond(ctx, asking, key, Understanding(intent, entities, 1.0), f"[{action}] {value}")


def _customer_action(ctx: Context, user: ChatUser, action: str, value: str, channel: str) -> ChatReply:
    """An answer to an offer (services/customer_actions.py): only a customer of ours may act, on their own."""
    with ctx.engine.connect() as conn:
        asking, _, _ = _asker(conn, ctx, user, channel)
    u = Understanding(action, {"value": value} if value else {}, 1.0)
    if asking.kind == "unlinked":
        return _unlinked(asking)
    if asking.kind == "stranger":
        return _answer(asking, u, "stranger", {})
    outcome = customer_actions.handle(ctx, asking.customer_id if asking.kind == "customer" else None, action,
                                      value, channel)
    return _answer(asking, Understanding(action, outcome.entities, 1.0), outcome.template, outcome.facts)


def _asker(conn: Connection, ctx: Context, user: ChatUser, channel: str) -> tuple[Asking, str, dict[str, Any]]:
    """Who is asking, their conversation key (per channel) and the state of their last turn."""
    if user.staff_id is not None and not user.linked and not ctx.settings.staff.unlinked_read:
        return Asking("unlinked", channel=channel, staff_id=user.staff_id), "", {}
    asking = identify(conn, user)
    asking.channel = channel
    who = f"customer:{asking.customer_id}" if asking.kind == "customer" else f"staff:{asking.staff_id}"
    key = f"{channel}:{who}"  # a conversation is per channel: WhatsApp's thread is not the web chat's
    state = conversations.load(conn, key, ctx.now()) if asking.kind != "stranger" else {}
    return asking, key, state


def _respond(ctx: Context, asking: Asking, key: str, u: Understanding, text: str) -> ChatReply:
    if asking.kind == "stranger" and u.intent not in SIMPLE:
        return _stranger(ctx, asking, u, text)
    with unit_of_work(ctx.engine) as conn:
        answer = _dispatch(conn, ctx, asking, u, text)
        if asking.kind != "stranger":  # nothing to remember for someone we cannot tell apart
            conversations.save(conn, key, next_state(conn, asking, answer), ctx.now())
    return answer


def _unlinked(asking: Asking) -> ChatReply:
    """A chat account no staff member is linked to: what to ask an admin for, and nothing from the store."""
    channel, _, account = (asking.staff_id or "").partition(":")
    return _answer(asking, Understanding(UNKNOWN), "unlinked", {"channel": channel, "account": account})


EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def _stranger(ctx: Context, asking: Asking, u: Understanding, text: str) -> ChatReply:
    """Someone we cannot place may see one order after proving it: its number and the e-mail on it."""
    given = EMAIL.search(text)
    order_id = u.entities.get("order_id")
    if order_id is None or given is None or u.intent not in ("order_status", "item_status", "eta"):
        return _answer(asking, u, "stranger", {})
    with ctx.engine.connect() as conn:
        o, c = t.orders, t.customers
        owner = conn.execute(select(c.c.customer_id, c.c.contacts, c.c.locale)
                             .join(o, o.c.customer_id == c.c.customer_id)
                             .where(o.c.order_id == str(order_id))).first()
        proven = owner is not None and (owner.contacts or {}).get("email", "").casefold() == given.group(0).casefold()
        if not proven:  # the same answer whether the order or the address was wrong
            return _answer(asking, u, "not_proven", {"order_id": order_id})
        one_order = Asking("customer", channel=asking.channel, customer_id=owner.customer_id,
                           locale=owner.locale or "en")
        return order_answer(conn, ctx, one_order, u, text)


def _dispatch(conn: Connection, ctx: Context, asking: Asking, u: Understanding, text: str) -> ChatReply:
    handler = CUSTOMER_HANDLERS.get(u.intent) if asking.kind == "customer" else None
    if handler is not None:
        return handler(conn, ctx, asking, u, text)
    if asking.kind == "customer" and u.intent == UNKNOWN and len(text.split()) >= QUESTION_MIN_WORDS \
            and ctx.settings.drafts.unknown_questions_to_team:
        return _pass_on(conn, ctx, asking, u, text)
    staff_handler = STAFF_HANDLERS.get(u.intent) if asking.kind == "staff" else None
    if staff_handler is not None:
        template, facts = staff_handler(conn, ctx, asking.roles, asking.staff_id or "staff", u, text)
        return _answer(asking, u, template, facts)
    return _answer(asking, u, u.intent if u.intent in SIMPLE else "unknown", {})


OTHER_ONE = re.compile(r"\b(the other( one| order)?|other one|el otro|la otra|los otros|and the rest)\b")
ASKED_FOR = {"which_order": "order_id", "which_product": "sku", "staff_which_sku": "sku"}


def follow_up(u: Understanding, state: dict[str, Any], text: str) -> Understanding:
    """Read this message in the light of the last turn: an answer to our question, or "the other one"."""
    if not state:
        return u
    awaiting = state.get("awaiting")
    weak = u.intent in ("unknown", "order_status", "greeting", "thanks") or u.confidence < 0.5
    if awaiting and awaiting in u.entities and weak:
        return Understanding(state["intent"], {**state.get("entities", {}), awaiting: u.entities[awaiting]}, 1.0)
    if OTHER_ONE.search(fold(text)) and state.get("order_id"):
        others = [o for o in state.get("orders", []) if o != state["order_id"]]
        if len(others) == 1:
            return Understanding(state.get("intent", "order_status"), {"order_id": others[0]}, 1.0)
    return u


def next_state(conn: Connection, asking: Asking, answer: ChatReply) -> dict[str, Any]:
    state: dict[str, Any] = {"intent": answer.intent, "entities": answer.entities}
    if answer.template in ASKED_FOR:
        state["awaiting"] = ASKED_FOR[answer.template]
    if answer.template == "order" and asking.customer_id is not None:
        state["order_id"] = answer.data["order"]["order_id"]
        state["orders"] = _open_orders(conn, asking.customer_id)
    return state


SIMPLE = ("help", "greeting", "thanks", "unknown")


# How each channel shows an answer: plain text; Markdown where the chat app renders it (*bold*);
# SMS plain text kept to two segments.
STYLES = {"slack": "md", "teams": "md", "sms": "sms"}
# Values printed into Teams answers are escaped as Markdown (Teams would render a name "[x](url)" as a
# link); Slack's front door escapes &, < and > of the whole answer, which is all Slack needs.
ESCAPES = {"teams": escape_markdown}


def _answer(asking: Asking, u: Understanding, template: str, facts: dict[str, Any], **extra: Any) -> ChatReply:
    style = STYLES.get(asking.channel, "txt")
    base = f"chat/{_locale(asking.locale)}/{template}"
    name = f"{base}.{style}.j2" if style != "txt" and _exists(f"{base}.{style}.j2") else f"{base}.txt.j2"
    text = render(name, escape=ESCAPES.get(asking.channel), facts=facts, entities=u.entities, ambiguous=u.ambiguous,
                  **extra)
    if style == "sms":
        text = sms.truncate(text if sms.segments(text) <= sms.SMS_MAX_SEGMENTS else sms.fold_to_gsm(text))
    return ChatReply(u.intent, u.entities, text, facts, template)


@lru_cache(maxsize=512)
def _exists(name: str) -> bool:
    return (TEMPLATE_DIR / name).is_file()


def _locale(locale: str) -> str:
    return "es" if locale.lower().startswith("es") else "en"


# -- customer answers ------------------------------------------------------------------------------
def _open_orders(conn: Connection, customer_id: str) -> list[str]:
    o, l = t.orders, t.order_lines
    return list(conn.execute(
        select(o.c.order_id).join(l, l.c.order_id == o.c.order_id)
        .where(o.c.customer_id == customer_id, l.c.status.in_(("backordered", "partially_allocated", "allocated")))
        .group_by(o.c.order_id).order_by(o.c.order_id)).scalars())


def _their_order(conn: Connection, customer_id: str, order_id: str) -> dict[str, Any] | None:
    order = get_order(conn, order_id)
    if order is None or order["customer_id"] != customer_id:
        return None  # the same answer for "not yours" as for "no such order"
    names = dict(conn.execute(select(t.products.c.sku, t.products.c.name)
                              .where(t.products.c.sku.in_({ln["sku"] for ln in order["lines"]}))).tuples().all())
    for ln in order["lines"]:
        ln["name"] = names.get(ln["sku"], ln["sku"])
        ln["waiting"] = ln["qty"] - ln["qty_allocated"] if ln["status"] in WAITING else 0
    return order


def order_answer(conn: Connection, ctx: Context, asking: Asking, u: Understanding, text: str) -> ChatReply:
    assert asking.customer_id is not None
    order_id = u.entities.get("order_id")
    if order_id is None:
        open_ids = _open_orders(conn, asking.customer_id)
        if len(open_ids) != 1:
            return _answer(asking, u, "which_order", {"orders": open_ids})
        order_id = open_ids[0]
    order = _their_order(conn, asking.customer_id, str(order_id))
    if order is None:
        return _answer(asking, u, "no_such_order", {"order_id": order_id})
    lines = order["lines"]
    if u.intent == "item_status" and "sku" in u.entities:
        lines = [ln for ln in lines if ln["sku"] == u.entities["sku"]] or lines
    return _answer(asking, u, "order", {"order": order, "lines": lines, "intent": u.intent})


def list_backorders(conn: Connection, ctx: Context, asking: Asking, u: Understanding, text: str) -> ChatReply:
    l, o, p = t.order_lines, t.orders, t.products
    rows = conn.execute(
        select(l.c.order_id, l.c.sku, p.c.name, l.c.qty, l.c.qty_allocated, l.c.status, l.c.eta, l.c.eta_reason)
        .join(o, o.c.order_id == l.c.order_id).join(p, p.c.sku == l.c.sku)
        .where(o.c.customer_id == asking.customer_id, l.c.status.in_(WAITING))
        .order_by(l.c.order_id, l.c.line_id)).all()
    lines = [{"order_id": r.order_id, "sku": r.sku, "name": r.name, "waiting": r.qty - r.qty_allocated,
              "status": r.status, "eta": r.eta.isoformat() if r.eta else None, "eta_reason": r.eta_reason}
             for r in rows]
    return _answer(asking, u, "backorders", {"lines": lines})


def back_in_stock(conn: Connection, ctx: Context, asking: Asking, u: Understanding, text: str) -> ChatReply:
    sku = u.entities.get("sku")
    if sku is None:
        return _answer(asking, u, "which_product", {"candidates": u.ambiguous.get("sku", [])})
    assert asking.customer_id is not None
    sub, _ = subscribe_in(conn, ctx, asking.customer_id, str(sku))
    name = conn.execute(select(t.products.c.name).where(t.products.c.sku == sku)).scalar_one()
    return _answer(asking, u, "subscribed", {"sku": sku, "name": name, "notified": sub["status"] == "notified"})


def opt_out_or_in(conn: Connection, ctx: Context, asking: Asking, u: Understanding, text: str) -> ChatReply:
    """STOP opts out of every message; START takes that back (channel opt-outs stay as they were)."""
    c = t.customers
    prefs = dict(conn.execute(select(c.c.preferences).where(c.c.customer_id == asking.customer_id)).scalar_one()
                 or {})
    opted = [x for x in prefs.get("opt_out", []) if x != "all"]
    if u.intent == "opt_out":
        opted.append("all")
    if opted:
        prefs["opt_out"] = opted
    else:
        prefs.pop("opt_out", None)
    conn.execute(update(c).where(c.c.customer_id == asking.customer_id).values(preferences=prefs))
    return _answer(asking, u, u.intent, {})


def set_preferences(conn: Connection, ctx: Context, asking: Asking, u: Understanding, text: str) -> ChatReply:
    """Apply what the message asks (channel first, language, digest or instant, quiet hours)."""
    wanted = preferences.change(text, u.entities)
    if not wanted:
        return _answer(asking, u, "which_preference", {})
    c = t.customers
    row = conn.execute(select(c.c.preferences, c.c.locale).where(c.c.customer_id == asking.customer_id)).one()
    prefs = dict(row.preferences or {})
    values: dict[str, Any] = {}
    if "channel" in wanted:
        chosen = prefs.get("channels") or [ctx.settings.notify.default_channel]
        prefs["channels"] = [wanted["channel"], *[ch for ch in chosen if ch != wanted["channel"]]]
        prefs["opt_out"] = [ch for ch in prefs.get("opt_out", []) if ch != wanted["channel"]] or None
    for key in ("delivery", "quiet_hours"):
        if key in wanted:
            prefs[key] = wanted[key]
    if "locale" in wanted:
        values["locale"] = wanted["locale"]
        asking.locale = wanted["locale"]  # answer in the language just chosen
    values["preferences"] = {k: v for k, v in prefs.items() if v not in (None, [])}
    conn.execute(update(c).where(c.c.customer_id == asking.customer_id).values(**values))
    return _answer(asking, u, "preferences_set", {"changed": wanted})


def handoff(conn: Connection, ctx: Context, asking: Asking, u: Understanding, text: str) -> ChatReply:
    """Open a hand-off task; the team hears of it through the notification rules (handoff_task)."""
    return _answer(asking, u, "handoff", {"task_id": _handoff_task(conn, ctx, asking, text)})


QUESTION_MIN_WORDS = 4  # fewer words than this is more likely a typo than a question a person should answer


def _pass_on(conn: Connection, ctx: Context, asking: Asking, u: Understanding, text: str) -> ChatReply:
    """A question the intents could not answer: a person gets it as a hand-off, with a reply drafted for them
    to approve or edit (services/offers.question_reply); the customer is told so."""
    task_id = _handoff_task(conn, ctx, asking, text)
    builder = RowBuilder(ctx, f"question:{task_id}", ctx.now(), ctx.now())
    offers.question_reply(conn, builder, str(asking.customer_id), text[:QUESTION_MAX], task_id, asking.channel)
    return _answer(asking, u, "unknown_passed_on", {"task_id": task_id})


QUESTION_MAX = 1000


def _handoff_task(conn: Connection, ctx: Context, asking: Asking, text: str) -> int:
    return open_task(conn, ctx, "handoff", sku=None, title=f"Customer {asking.customer_id} asks for a person",
                     detail={"customer_id": asking.customer_id, "message": text[:500]},
                     cause=f"chat:{asking.customer_id}:{ctx.now().isoformat()}")


CUSTOMER_HANDLERS: dict[str, Callable[[Connection, Context, Asking, Understanding, str], ChatReply]] = {
    "order_status": order_answer,
    "item_status": order_answer,
    "eta": order_answer,
    "list_backorders": list_backorders,
    "subscribe_back_in_stock": back_in_stock,
    "opt_out": opt_out_or_in,
    "opt_in": opt_out_or_in,
    "set_preferences": set_preferences,
    "handoff": handoff,
}
