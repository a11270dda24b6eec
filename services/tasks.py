"""Tasks for people: one open task per kind and SKU, with an owner role, a due time and, once taken, an owner.

An open task with an owner is "taken"; its status stays "open" until it is finished, so the one-open-task
index still holds. Taking, finishing and reassigning are each one unit of work with an audit row and a
domain event; each is a conditional UPDATE on the state it was decided on, so of two presses of one
button one acts and the other is told what happened (docs/tasks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from allocation.model import DomainEvent
from prompts import render
from services import task_staff
from services.context import Context
from services.reads import task_view
from services.recording import record
from services.task_staff import Member, may_work, needs
from store import allocation_io as io
from store import tables as t
from store.db import unit_of_work

CLOSED_OUTCOMES = ("done", "approved", "rejected", "cancelled")
# Reorder suggestions close by approval or rejection (services/suggestions.py), never by a plain Done.
DECIDED_KINDS = frozenset({"purchase_suggestion", "transfer_suggestion"})


def words(name: str, **facts: Any) -> str:
    """A sentence about tasks for a person (prompts/tasks/en/<name>.txt.j2)."""
    return render(f"tasks/en/{name}.txt.j2", **facts)


class TaskError(Exception):
    """A task command that cannot be done; the message says why, in words for the person who asked."""


class TaskNotFound(TaskError):
    pass


class TaskClosed(TaskError):
    """Already finished: `task` is how it stands (who closed it, when, how)."""

    def __init__(self, message: str, task: dict[str, Any]) -> None:
        super().__init__(message)
        self.task = task


class TaskTaken(TaskError):
    """Someone else has it: reassign it instead."""

    def __init__(self, message: str, task: dict[str, Any]) -> None:
        super().__init__(message)
        self.task = task


class NotAllowed(TaskError):
    pass


class UnknownStaff(TaskError):
    """No staff member has this id; `field` names where it came from (staff_id, by, to)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class CannotOwn(TaskError):
    """The staff member a task is reassigned to may not work it (they lack its role)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts on a task and through what (api, slack, teams, chat): audit rows say `via:staff_id`."""

    staff_id: str
    roles: frozenset[str]
    via: str = "api"

    @property
    def label(self) -> str:
        return f"{self.via}:{self.staff_id}"


def open_task(conn: Connection, ctx: Context, kind: str, *, sku: str | None, title: str,
              detail: dict[str, Any], cause: str, po_id: str | None = None,
              severity: str | None = None) -> int | None:
    """Open a task unless one of this kind is already open for the SKU; returns the new task id.

    Its owner role and due time come from [tasks] (owner_roles, sla_hours) for its kind."""
    tk = t.tasks
    if sku is not None and conn.execute(
        select(tk.c.id).where(tk.c.kind == kind, tk.c.sku == sku, tk.c.status == "open")
    ).first():
        return None
    now = ctx.now()
    cfg = ctx.settings.tasks
    owner_role = cfg.owner_role(kind)
    due_at = now + timedelta(hours=cfg.sla(kind))
    task_id = conn.execute(insert(tk).values(
        kind=kind, sku=sku, po_id=po_id, title=title, detail=detail, severity=severity, status="open",
        created_at=now, owner_role=owner_role, due_at=due_at,
    ).returning(tk.c.id)).scalar_one()
    record(conn, ctx, [DomainEvent("task_opened", {"task_id": task_id, "kind": kind, "sku": sku, "po_id": po_id,
                                                    "title": title, "severity": severity, "detail": detail,
                                                    "owner_role": owner_role, "due_at": due_at.isoformat()})],
           {}, cause, now)
    io.write_audit(conn, [{"entity": "task", "entity_id": str(task_id), "action": "opened", "before": None,
                           "after": {"kind": kind, "sku": sku, "title": title, "owner_role": owner_role,
                                     "due_at": due_at}}], "workflow", cause, now)
    return task_id


# -- who acts ---------------------------------------------------------------------------------------
def actor(conn: Connection, ctx: Context, staff_id: str, *, via: str = "api", field: str = "staff_id") -> Actor:
    found = _member(conn, ctx, staff_id, field)
    return Actor(found.staff_id, found.roles, via)


def _member(conn: Connection, ctx: Context, staff_id: str, field: str) -> Member:
    found = task_staff.member(conn, ctx.settings, staff_id)
    if found is None:
        raise UnknownStaff(words("unknown_staff", staff_id=staff_id), field)
    return found


# -- the commands, each its own unit of work ----------------------------------------------------------
def take(ctx: Context, task_id: int, staff_id: str, *, via: str = "api") -> dict[str, Any]:
    """The staff member takes the open task (they become its owner). Returns the task, with `changed`."""
    with unit_of_work(ctx.engine) as conn:
        return take_in(conn, ctx, task_id, actor(conn, ctx, staff_id, via=via))


def finish(ctx: Context, task_id: int, staff_id: str, *, via: str = "api", outcome: str = "done") -> dict[str, Any]:
    """The staff member finishes the open task (taken or not, by them or not: their role is what counts)."""
    with unit_of_work(ctx.engine) as conn:
        return close(conn, ctx, task_id, actor(conn, ctx, staff_id, via=via), outcome)


def reassign(ctx: Context, task_id: int, by: str, to_staff_id: str, *, via: str = "api") -> dict[str, Any]:
    """`by` gives the open task to `to_staff_id`, who must be able to work it."""
    with unit_of_work(ctx.engine) as conn:
        who = actor(conn, ctx, by, via=via, field="by")
        return reassign_in(conn, ctx, task_id, who, _member(conn, ctx, to_staff_id, "to"))


def reassign_choices(ctx: Context, task_id: int, who: Actor) -> tuple[dict[str, Any], list[Member]]:
    """The open task and everyone `who` may give it to (those who can work it, but its owner), for a picker.

    Raises as reassign would for the task and `who`; the choice is checked again when it is made."""
    with ctx.engine.connect() as conn:
        row, role = _open_row(conn, ctx, task_id, who, "reassign", lock=False)
        people = [m for m in task_staff.candidates(conn, ctx.settings, role) if m.staff_id != row["owner"]]
    return task_view(row, ctx.now()), people


def escalate_due(ctx: Context) -> int:
    """Every open task past its due time and not yet escalated is escalated once; returns how many."""
    from services.task_escalation import escalate_due as run

    return run(ctx)


# -- the same inside a caller's unit of work (chat answers, suggestions' approvals) ----------------------
def take_in(conn: Connection, ctx: Context, task_id: int, who: Actor) -> dict[str, Any]:
    row, role = _open_row(conn, ctx, task_id, who, "take")
    now = ctx.now()
    if row["owner"] == who.staff_id:
        return {**task_view(row, now), "changed": False}  # a second press of Take: it is theirs already
    if row["owner"] is not None:
        raise TaskTaken(words("taken_by_other", task=row), task_view(row, now))
    tk = t.tasks
    done = conn.execute(update(tk).where(tk.c.id == task_id, tk.c.status == "open", tk.c.owner.is_(None))
                        .values(owner=who.staff_id, taken_at=now, owner_role=role)).rowcount
    if not done:  # taken or closed in between (SQLite has no row lock to stop it)
        return take_in(conn, ctx, task_id, who)
    _recorded(conn, ctx, row, who, "taken", {"owner": None}, {"owner": who.staff_id}, now)
    return _changed(conn, task_id, now)


def close(conn: Connection, ctx: Context, task_id: int, who: Actor, outcome: str = "done") -> dict[str, Any]:
    if outcome not in CLOSED_OUTCOMES:
        raise ValueError(f"outcome: {outcome!r} is not one of {', '.join(CLOSED_OUTCOMES)}")
    row, _ = _open_row(conn, ctx, task_id, who, "finish")
    if outcome == "done" and row["kind"] in DECIDED_KINDS:  # Done must not skip the approval's webhook
        raise NotAllowed(words("decide_instead", task=row))
    now = ctx.now()
    tk = t.tasks
    status = "cancelled" if outcome == "cancelled" else "done"
    done = conn.execute(update(tk).where(tk.c.id == task_id, tk.c.status == "open")
                        .values(status=status, closed_at=now, closed_by=who.staff_id, outcome=outcome)).rowcount
    if not done:
        return close(conn, ctx, task_id, who, outcome)  # closed in between: told so by _open_row
    _recorded(conn, ctx, row, who, outcome, {"status": "open"}, {"status": status, "outcome": outcome}, now)
    return _changed(conn, task_id, now)


def reassign_in(conn: Connection, ctx: Context, task_id: int, who: Actor, to: Member) -> dict[str, Any]:
    row, role = _open_row(conn, ctx, task_id, who, "reassign")
    now = ctx.now()
    if not may_work(to.roles, role):
        raise CannotOwn(words("cannot_own", staff_id=to.staff_id, kind=row["kind"], needs=needs(role)))
    if row["owner"] == to.staff_id:
        return {**task_view(row, now), "changed": False}
    tk = t.tasks
    done = conn.execute(update(tk).where(tk.c.id == task_id, tk.c.status == "open",
                                         _same_owner(row["owner"]))
                        .values(owner=to.staff_id, taken_at=now, owner_role=role)).rowcount
    if not done:
        return reassign_in(conn, ctx, task_id, who, to)
    _recorded(conn, ctx, row, who, "reassigned", {"owner": row["owner"]}, {"owner": to.staff_id}, now)
    return _changed(conn, task_id, now)


# -- helpers ------------------------------------------------------------------------------------------
def role_of(ctx: Context, row: Mapping[str, Any]) -> str | None:
    """The role that works a task: its own, or (a task from before owner roles) its kind's from [tasks]."""
    return row["owner_role"] or ctx.settings.tasks.owner_role(row["kind"])


def _open_row(conn: Connection, ctx: Context, task_id: int, who: Actor, verb: str,
              lock: bool = True) -> tuple[Mapping[str, Any], str | None]:
    """The task (locked, unless only read), checked to be open and the actor's to work; its role."""
    tk = t.tasks
    query = select(tk).where(tk.c.id == task_id)
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    if row is None:
        raise TaskNotFound(words("not_found", task_id=task_id))
    role = role_of(ctx, row)
    if not may_work(who.roles, role):
        raise NotAllowed(words("not_allowed", needs=needs(role), verb=verb, kind=row["kind"]))
    if row["status"] != "open":
        raise TaskClosed(closed_message(row), task_view(row, ctx.now()))
    return row, role


def closed_message(row: Mapping[str, Any]) -> str:
    when = row["closed_at"].strftime("%Y-%m-%d %H:%M UTC") if row["closed_at"] else None
    return words("closed", task=row, when=when)


def _same_owner(owner: str | None) -> Any:
    return t.tasks.c.owner.is_(None) if owner is None else t.tasks.c.owner == owner


def _recorded(conn: Connection, ctx: Context, row: Mapping[str, Any], who: Actor, action: str,
              before: dict[str, Any], after: dict[str, Any], now: datetime) -> None:
    """The audit row and the domain event of a task command (the event's type names what happened)."""
    task_id = row["id"]
    cause = f"task:{task_id}:{action}:{who.label}:{now.isoformat()}"
    etype = "task_closed" if action in CLOSED_OUTCOMES else f"task_{action}"
    record(conn, ctx, [DomainEvent(etype, {"task_id": task_id, "kind": row["kind"], "sku": row["sku"],
                                           "by": who.staff_id, "via": who.via, **after})], {}, cause, now)
    io.write_audit(conn, [{"entity": "task", "entity_id": str(task_id), "action": action,
                           "before": before, "after": after}], who.label, cause, now)


def _changed(conn: Connection, task_id: int, now: datetime) -> dict[str, Any]:
    row = conn.execute(select(t.tasks).where(t.tasks.c.id == task_id)).mappings().one()
    return {**task_view(row, now), "changed": True}


def get_task(ctx: Context, task_id: int) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(t.tasks).where(t.tasks.c.id == task_id)).mappings().first()
    if row is None:
        raise TaskNotFound(words("not_found", task_id=task_id))
    return task_view(row, ctx.now())
