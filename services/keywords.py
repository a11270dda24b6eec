"""SMS and WhatsApp keywords: STOP and its synonyms, START, HELP, matched on the whole message.

Carriers (and Twilio's Advanced Opt-Out) treat these words as commands, not questions, so they are
acted on before the chat pipeline sees the message, and the opt-out is recorded at once: in our own
suppression list (checked before every send on that channel) and, for a customer, in their
preferences' opt_out list (so new notices are routed to another channel at planning time).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, select, update

from store import tables as t
from store.chat_state import suppress, unsuppress

Keyword = Literal["stop", "start", "help"]

# Twilio's and the CTIA's standard opt-out words, plus Spanish ones our Spanish customers send.
STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout",
                        "parar", "baja"})
START_WORDS = frozenset({"start", "unstop", "yes", "alta"})
WEAK_START = frozenset({"yes"})  # opts back in only a number that opted out; otherwise it is just a word
HELP_WORDS = frozenset({"help", "info", "ayuda"})


def word_of(text: str) -> str:
    """The message as one candidate keyword: trimmed, case-folded, a trailing '.' or '!' ignored."""
    return (text or "").strip().casefold().rstrip(".!")


def keyword(text: str) -> Keyword | None:
    """The keyword this whole message is, if any."""
    word = word_of(text)
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


def opt_out(conn: Connection, channel: str, number: str, customer_id: str | None, reason: str,
            now: datetime) -> None:
    """Stop every message to `number` on `channel`, in the caller's unit of work.

    `reason`: what said so ("keyword:STOP", or "twilio:21610" when the carrier reports the number opted out).
    """
    suppress(conn, channel, number, reason[:60], now)
    if customer_id is not None:
        _set_channel_opt_out(conn, customer_id, channel, True)


def opt_in(conn: Connection, channel: str, number: str, customer_id: str | None) -> None:
    """Take a keyword opt-out back (START): the channel is usable again."""
    unsuppress(conn, channel, number)
    if customer_id is not None:
        _set_channel_opt_out(conn, customer_id, channel, False)


def _set_channel_opt_out(conn: Connection, customer_id: str, channel: str, out: bool) -> None:
    c = t.customers
    prefs = conn.execute(select(c.c.preferences).where(c.c.customer_id == customer_id)
                         .with_for_update()).scalar_one_or_none()
    prefs = dict(prefs or {})
    opted = [x for x in prefs.get("opt_out") or [] if x != channel]
    if out:
        opted.append(channel)
    if opted:
        prefs["opt_out"] = opted
    else:
        prefs.pop("opt_out", None)
    conn.execute(update(c).where(c.c.customer_id == customer_id).values(preferences=prefs))
