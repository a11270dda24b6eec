"""What every chat front door keeps in the store: inbound deliveries seen once, opt-outs (suppressions),
conversation references for proactive sends, threads per topic, and the staff behind chat accounts.

Front doors (bot/) verify a request, then call these and services.chat; senders (notifiers/) read
suppressions, references and threads. Each function takes the connection of the caller's unit of work.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from backorder.config import Settings
from services.chat import ChatUser
from store import tables as t
from store.upsert import dialect_insert


# -- inbound deliveries -----------------------------------------------------------------------------
def first_delivery(conn: Connection, channel: str, message_id: str, sender: str, now: datetime) -> bool:
    """Record an inbound message; False when this (channel, message id) was delivered before (a retry)."""
    stmt = dialect_insert(conn, t.inbound_messages).values(
        channel=channel, message_id=message_id[:200], sender=sender[:300], received_at=now,
    ).on_conflict_do_nothing(index_elements=["channel", "message_id"]).returning(t.inbound_messages.c.id)
    return conn.execute(stmt).first() is not None


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


# -- staff behind chat accounts ----------------------------------------------------------------------
ACCOUNT_FIELDS = ("slack_user", "teams_user", "phone")


def add_staff(conn: Connection, staff_id: str, roles: list[str], now: datetime, *, name: str | None = None,
              slack_user: str | None = None, teams_user: str | None = None, phone: str | None = None,
              email: str | None = None, warehouse_id: str | None = None) -> dict[str, Any]:
    """Create or update a staff member; accounts not given keep their value. Returns the stored row."""
    s = t.staff_members
    given = {k: v for k, v in {"name": name, "slack_user": slack_user, "teams_user": teams_user, "phone": phone,
                               "email": email, "warehouse_id": warehouse_id}.items() if v is not None}
    for field in ACCOUNT_FIELDS:
        if field in given:
            owner = conn.execute(select(s.c.staff_id).where(s.c[field] == given[field])).scalar_one_or_none()
            if owner is not None and owner != staff_id:
                raise ValueError(f"{field} {given[field]} is already linked to staff {owner}")
    values = {"roles": sorted(set(roles)), "updated_at": now, **given}
    stmt = dialect_insert(conn, s).values(staff_id=staff_id, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["staff_id"], set_=values))
    return dict(conn.execute(select(s).where(s.c.staff_id == staff_id)).mappings().one())


def remove_staff(conn: Connection, staff_id: str) -> bool:
    s = t.staff_members
    return bool(conn.execute(delete(s).where(s.c.staff_id == staff_id)).rowcount)


def list_staff(conn: Connection, settings: Settings) -> list[dict[str, Any]]:
    """Everyone: the store's members, then those only the configuration names (`source` says which)."""
    s = t.staff_members
    stored = [{**dict(r), "source": "store"} for r in conn.execute(select(s).order_by(s.c.staff_id)).mappings()]
    known = {r["staff_id"] for r in stored}
    configured = [{"staff_id": sid, **m.model_dump(exclude={"warehouse"}), "warehouse_id": m.warehouse,
                   "source": "config"}
                  for sid, m in sorted(settings.staff.members.items()) if sid not in known]
    return stored + configured


def staff_user(conn: Connection, settings: Settings, field: str, value: str) -> ChatUser | None:
    """The staff member a chat account (slack_user, teams_user or phone) belongs to, with their roles.

    The store (`backorder staff add`) wins over the configuration's [staff.members].
    """
    if field not in ACCOUNT_FIELDS:
        raise ValueError(f"unknown account field {field!r}")
    s = t.staff_members
    row = conn.execute(select(s.c.staff_id, s.c.roles, s.c.warehouse_id).where(s.c[field] == value)).first()
    if row is not None:
        return ChatUser(staff_id=row.staff_id, roles=frozenset(row.roles or ()), warehouse_id=row.warehouse_id)
    for staff_id, member in settings.staff.members.items():
        if getattr(member, field) == value:
            return ChatUser(staff_id=staff_id, roles=frozenset(member.roles), warehouse_id=member.warehouse)
    return None
