"""The staff behind chat accounts: people linked to Slack, Teams and phone accounts, and their roles.

Each function takes the connection of the caller's unit of work. What else the channels keep in the
store (deliveries seen, opt-outs, references, threads) is in store/chat_state.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select

from backorder.config import Settings
from services.chat import ChatUser
from store import tables as t
from store.upsert import dialect_insert

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
