"""Conversation state per asker: what the last turn asked for, so a follow-up can use it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from store import tables as t
from store.upsert import dialect_insert

# A reply that comes later than this starts afresh: "1057" an hour later is not an answer to "which order?".
TTL = timedelta(minutes=15)


def load(conn: Connection, key: str, now: datetime) -> dict[str, Any]:
    row = conn.execute(select(t.conversations.c.state, t.conversations.c.updated_at)
                       .where(t.conversations.c.key == key)).first()
    if row is None or now - row.updated_at > TTL:
        return {}
    return dict(row.state or {})


def save(conn: Connection, key: str, state: dict[str, Any], now: datetime) -> None:
    c = t.conversations
    stmt = dialect_insert(conn, c).values(key=key, state=state, updated_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"state": state, "updated_at": now}))
