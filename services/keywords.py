"""SMS and WhatsApp keywords: STOP and its synonyms, START, HELP, matched on the whole message.

Carriers (and Twilio's Advanced Opt-Out) treat these words as commands, not questions, so they are
acted on before the chat pipeline sees the message; the opt-out is recorded at once by
store.chat_state.set_opt_out, the same way a carrier's 21610 is (suppression and the customer's preferences).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import Connection

from store.chat_state import set_opt_out

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


def take_effect(conn: Connection, word: Keyword, channel: str, number: str, customer_id: str | None, text: str,
                now: datetime) -> None:
    """What STOP and START change, in the caller's unit of work (HELP changes nothing)."""
    if word == "stop":
        set_opt_out(conn, channel, number, customer_id, True, now, f"keyword:{text.strip().upper()[:40]}")
    elif word == "start":
        set_opt_out(conn, channel, number, customer_id, False, now)
