"""One inbound SMS or WhatsApp message: who sent it, once only, keywords first, then the chat pipeline.

After STOP, START and HELP come the answers to offers (services/customer_actions.py): a quick-reply
button's payload, or a whole message that is an offer keyword ("SWAP 12", "KEEP", "SHIP 1042", "ESPERAR").

The answer is written to the outbox (kind chat_reply, one row per inbound MessageSid), which the
worker sends through notifiers/senders/twilio.py.

Confirmations: on SMS, Twilio's Advanced Opt-Out (on by default for long codes and toll-free numbers)
already answers STOP itself, and START and HELP too when it says so with the OptOutType parameter;
a second confirmation from us would be one message too many, so we send none. WhatsApp has no such
service, so we confirm every keyword there ourselves (after STOP, that confirmation is the one
message the number still gets).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, select

from intake.fields import e164
from notifiers.render import resolve_locale
from prompts import render
from services import chat, customer_actions
from services.channels import staff_user
from services.context import Context
from services.keywords import WEAK_START, Keyword, keyword, take_effect, word_of
from store import tables as t
from store.chat_state import first_delivery, is_suppressed
from store.db import unit_of_work
from store.upsert import insert_ignore

log = logging.getLogger(__name__)

REPLY_TTL = timedelta(hours=1)  # an answer later than this would answer a question nobody remembers asking
CHANNEL_NAMES = {"sms": "SMS", "whatsapp": "WhatsApp"}
CONFIRMATION = "keyword_reply"  # outbox kind of a keyword's confirmation (sent even to a number that said STOP)


class BadForm(ValueError):
    """A signed request without what every Twilio message carries (names the field)."""


def sender(raw: str) -> str:
    number = e164(raw, strict=False)
    if number is None:
        raise BadForm(f"From: {raw!r} is not an E.164 phone number")
    return number


def answer(ctx: Context, channel: str, form: Mapping[str, str]) -> bool:
    """Handle one message; True when an answer was queued (the worker should look now).

    Twilio delivers again what it thinks failed, so a message is answered once: the delivery is recorded as
    seen in the same unit of work as its answer, never before it. A failure while answering leaves it
    unseen, and Twilio's next delivery is answered; of two deliveries at once, the one that records it
    first answers and the other writes nothing.
    """
    for name in ("MessageSid", "From"):
        if not form.get(name):
            raise BadForm(f"{name}: missing from the webhook")
    sid, number, text = form["MessageSid"], sender(form["From"]), form.get("Body", "")
    with ctx.engine.connect() as conn:
        if _seen(conn, channel, sid):
            log.info("%s %s delivered again: answered already", channel, sid)
            return False
        user = _phone_user(conn, ctx, number)
        asking = chat.identify(conn, user)
        word = None if form.get("ButtonPayload") else keyword(text)
        if word == "start" and word_of(text) in WEAK_START and not is_suppressed(conn, channel, number):
            word = None
    if word is not None:
        return _keyword(ctx, channel, number, sid, text, word, asking, form)
    replied = _button(ctx, user, form, channel) if form.get("ButtonPayload") else None
    if replied is None and (said := customer_actions.keyword(text)) is not None:
        replied = chat.act(ctx, user, said[0], said[1], channel)  # SWAP 12, KEEP, SHIP 1042, ESPERAR ...
    if replied is None:
        replied = chat.reply(ctx, user, text, channel)
    with unit_of_work(ctx.engine) as conn:
        if not first_delivery(conn, channel, sid, number, ctx.now()):
            log.info("%s %s answered by a concurrent delivery", channel, sid)
            return False
        insert_ignore(conn, t.outbox, [reply_row(ctx, channel, number, sid, replied.reply, asking)],
                      ["idempotency_key"])
    return True


def _seen(conn: Connection, channel: str, sid: str) -> bool:
    im = t.inbound_messages
    return conn.execute(select(im.c.id).where(im.c.channel == channel, im.c.message_id == sid[:200])).first() \
        is not None


def _phone_user(conn: Connection, ctx: Context, number: str) -> chat.ChatUser:
    """Who a number is. A staff member's number names them but grants no roles: an SMS sender id is easy to
    spoof, so caller id alone may read what staff read, never close a task or run an allocation."""
    staff = staff_user(conn, ctx.settings, "phone", number)
    return replace(staff, roles=frozenset()) if staff is not None else chat.ChatUser(phone=number)


def _keyword(ctx: Context, channel: str, number: str, sid: str, text: str, word: Keyword, asking: chat.Asking,
             form: Mapping[str, str]) -> bool:
    """STOP, START or HELP: it takes effect at once, in the unit of work that records the delivery (so once)."""
    with unit_of_work(ctx.engine) as conn:
        if not first_delivery(conn, channel, sid, number, ctx.now()):
            return False
        take_effect(conn, word, channel, number, asking.customer_id, text, ctx.now())
        if channel == "sms" and (word == "stop" or bool(form.get("OptOutType"))):
            return False  # Twilio's Advanced Opt-Out answered it
        template = {"stop": "stopped", "start": "started", "help": "help"}[word]
        body = render(f"twilio/{resolve_locale(asking.locale)}/{template}.txt.j2", channel_name=CHANNEL_NAMES[channel])
        insert_ignore(conn, t.outbox, [reply_row(ctx, channel, number, sid, body, asking, kind=CONFIRMATION)],
                      ["idempotency_key"])
    return True


def _button(ctx: Context, user: chat.ChatUser, form: Mapping[str, str], channel: str) -> chat.ChatReply | None:
    """A quick-reply press: our payloads are "<action id>:<value>" (notifiers/senders/twilio.py)."""
    action, _, value = form["ButtonPayload"].partition(":")
    if action not in chat.ACTIONS and action not in customer_actions.ACTIONS:
        log.info("unknown button payload %r: answered as its text", form["ButtonPayload"])
        return chat.reply(ctx, user, form.get("ButtonText") or form.get("Body", ""), channel)
    return chat.act(ctx, user, action, value, channel)


def reply_row(ctx: Context, channel: str, number: str, sid: str, body: str, asking: chat.Asking, *,
              kind: str = "chat_reply") -> dict[str, Any]:
    """The outbox row of an answer (the columns of services.notifications.RowBuilder._base)."""
    now = ctx.now()
    return {
        "idempotency_key": f"{kind}:{channel}:{sid}", "kind": kind, "channel": channel, "recipient": number,
        "audience": "staff" if asking.kind == "staff" else "customer", "customer_id": asking.customer_id,
        "order_id": None, "sku": None, "role": None, "line_ids": [], "locale": asking.locale or "en",
        "subject": None, "body": body, "html": None, "payload": {}, "facts": {}, "fallback": [], "urgent": True,
        "status": "pending", "due_at": now, "expires_at": now + REPLY_TTL, "lease_owner": None, "attempts": 0,
        "error": None, "error_reason": None, "provider_id": None, "cause": f"{channel}:{sid}",
        "occurred_at": now, "created_at": now, "updated_at": now, "sent_at": None, "delivered_at": None,
    }
