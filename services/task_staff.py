"""The staff members tasks are worked by: who someone is by staff id, and what they may do with a task.

The store (`backorder staff add`) wins over the configuration's [staff.members], as for chat accounts
(services/channels.py staff_user).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from backorder.config import Settings
from store import tables as t

# Roles that may work any task, whatever its owner role (as for every staff action in chat).
ACTING_ROLES = frozenset({"ops", "admin"})


@dataclass(frozen=True, slots=True)
class Member:
    staff_id: str
    roles: frozenset[str]
    name: str | None = None
    # How to reach them: slack_user, teams_user, phone, email (the ones they have).
    accounts: dict[str, str] = field(default_factory=dict)


def member(conn: Connection, settings: Settings, staff_id: str) -> Member | None:
    """The staff member with this id (store first, then [staff.members]); None when nobody has it."""
    s = t.staff_members
    row = conn.execute(select(s).where(s.c.staff_id == staff_id)).mappings().first()
    if row is not None:
        accounts = {k: str(row[k]) for k in ("slack_user", "teams_user", "phone", "email") if row[k]}
        return Member(staff_id, frozenset(row["roles"] or ()), row["name"], accounts)
    configured = settings.staff.members.get(staff_id)
    if configured is None:
        return None
    accounts = {k: str(v) for k in ("slack_user", "teams_user", "phone", "email")
                if (v := getattr(configured, k))}
    return Member(staff_id, frozenset(configured.roles), configured.name, accounts)


def may_work(roles: frozenset[str], owner_role: str | None) -> bool:
    """Whether someone with `roles` may take, finish or reassign a task its owner role works on."""
    return bool(roles & ACTING_ROLES) or (owner_role is not None and owner_role in roles)


def needs(owner_role: str | None) -> list[str]:
    """The roles that may work a task of this owner role, for "only X or Y may ..."."""
    return sorted(ACTING_ROLES | ({owner_role} if owner_role else set()))


def candidates(conn: Connection, settings: Settings, owner_role: str | None) -> list[Member]:
    """Everyone a task of this owner role may be reassigned to (they hold the role, or ops/admin), by id."""
    from services.channels import list_staff  # services.channels imports services.chat: keep it off import

    out = []
    for m in list_staff(conn, settings):
        roles = frozenset(m.get("roles") or ())
        if may_work(roles, owner_role):
            out.append(Member(str(m["staff_id"]), roles, m.get("name")))
    return out
