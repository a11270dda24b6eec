"""What the chat channels keep in the store: inbound deliveries seen once (and when a sender last wrote),
opt-outs (suppressions, and a customer's opt_out preference with them), conversation references for
proactive sends, and threads per topic.

Front doors (bot/) write them as requests arrive; senders (notifiers/) read them before sending. Each
function takes the connection of the caller's unit of work.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from store import tables as t
from store.upsert import dialect_insert


# -- inbound deliveries -----------------------------------------------------------------------------
def first_delivery(conn: Connection, channel: str, message_id: str, sender: str, now: datetime) -> bool:
    """Record an inbound message; False when this (channel, message id) was delivered before (a retry)."""
    stmt = dialect_insert(conn, t.inbound_messages).values(
        channel=channel, message_id=message_id[:200], sender=sender[:300], received_at=now,
    ).on_conflict_do_nothing(index_elements=["channel", "message_id"]).returning(t.inbound_messages.c.id)
    return conn.execute(stmt).first() is not None


def forget_delivery(conn: Connection, channel: str, message_id: str) -> None:
    """Undo first_delivery for a message whose answer never went out, so the provider's retry is answered."""
    im = t.inbound_messages
    conn.execute(delete(im).where(im.c.channel == channel, im.c.message_id == message_id[:200]))


def purge_deliveries(conn: Connection, before: datetime) -> int:
    """Forget deliveries older than `before`: providers retry within hours, and WhatsApp's window is a day."""
    im = t.inbound_messages
    return int(conn.execute(delete(im).where(im.c.received_at < before)).rowcount or 0)


def last_inbound(conn: Connection, channel: str, sender: str) -> datetime | None:
    """When `sender` last wrote to us on `channel` (WhatsApp's 24-hour session window starts there)."""
    im = t.inbound_messages
    return conn.execute(select(func.max(im.c.received_at))
                        .where(im.c.channel == channel, im.c.sender == sender)).scalar_one_or_none()


# -- suppressions (opt-outs by keyword) --------------------------------------------------------------
def suppress(conn: Connection, channel: str, address: str, reason: str, now: datetime) -> None:
    stmt = dialect_insert(conn, t.suppressions).values(channel=channel, address=address, reason=reason,
                                                      created_at=now)
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["channel", "address"]))


def unsuppress(conn: Connection, channel: str, address: str) -> bool:
    s = t.suppressions
    return bool(conn.execute(delete(s).where(s.c.channel == channel, s.c.address == address)).rowcount)


def is_suppressed(conn: Connection, channel: str, address: str) -> bool:
    s = t.suppressions
    return conn.execute(select(s.c.reason).where(s.c.channel == channel, s.c.address == address)).first() is not None


def set_opt_out(conn: Connection, channel: str, address: str, customer_id: str | None, opted_out: bool,
                now: datetime, reason: str = "") -> None:
    """Opt `address` out of `channel` (or back in), the one way every path does it: STOP and START, a
    carrier's 21610 on a send or in a status callback.

    Both records change together: the suppression (checked by the sender before every send) and, for a
    known customer, the channel in their preferences' opt_out list (so planning routes around it).
    `reason` says what opted them out ("keyword:STOP", "twilio:21610").
    """
    if opted_out:
        suppress(conn, channel, address, reason[:60], now)
    else:
        unsuppress(conn, channel, address)
    if customer_id is None:
        return
    c = t.customers
    prefs = conn.execute(select(c.c.preferences).where(c.c.customer_id == customer_id)
                         .with_for_update()).scalar_one_or_none()
    prefs = dict(prefs or {})
    opted = [x for x in prefs.get("opt_out") or [] if x != channel]
    if opted_out:
        opted.append(channel)
    if opted:
        prefs["opt_out"] = opted
    else:
        prefs.pop("opt_out", None)
    conn.execute(update(c).where(c.c.customer_id == customer_id).values(preferences=prefs))


# -- conversation references and threads -------------------------------------------------------------
def save_ref(conn: Connection, channel: str, key: str, reference: Mapping[str, Any], now: datetime) -> None:
    """Keep (or refresh) how to reach `key` on `channel` later: the latest reference wins."""
    r = t.channel_refs
    stmt = dialect_insert(conn, r).values(channel=channel, key=key, reference=dict(reference), updated_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=["channel", "key"],
                                            set_={"reference": dict(reference), "updated_at": now}))


def load_ref(conn: Connection, channel: str, key: str) -> dict[str, Any] | None:
    r = t.channel_refs
    found = conn.execute(select(r.c.reference).where(r.c.channel == channel, r.c.key == key)).scalar_one_or_none()
    return dict(found) if found is not None else None


def thread_of(conn: Connection, channel: str, destination: str, topic: str) -> str | None:
    th = t.chat_threads
    return conn.execute(select(th.c.thread_id).where(th.c.channel == channel, th.c.destination == destination,
                                                     th.c.topic == topic)).scalar_one_or_none()


def remember_thread(conn: Connection, channel: str, destination: str, topic: str, thread_id: str,
                    now: datetime) -> None:
    """The first message about a topic starts its thread; a later one never replaces it."""
    stmt = dialect_insert(conn, t.chat_threads).values(channel=channel, destination=destination, topic=topic,
                                                      thread_id=thread_id, updated_at=now)
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["channel", "destination", "topic"]))
