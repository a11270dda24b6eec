"""The work queues the dashboard shows beside the figures: open tasks, incidents, drafts awaiting approval,
dead letters; and the cheap fingerprint of the store that tells an open dashboard something changed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, select

from store import tables as t


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def open_tasks(conn: Connection, now: datetime, limit: int = 10) -> dict[str, Any]:
    """Open tasks: counts (overdue: past due_at; taken: with an owner) and the first `limit` by due time."""
    tk = t.tasks
    total, overdue, taken = conn.execute(select(
        func.count(), func.coalesce(func.sum(case((tk.c.due_at < now, 1), else_=0)), 0),
        func.coalesce(func.sum(case((tk.c.owner.is_not(None), 1), else_=0)), 0)).where(tk.c.status == "open")).one()
    by_kind = {k: int(n) for k, n in conn.execute(
        select(tk.c.kind, func.count()).where(tk.c.status == "open").group_by(tk.c.kind)).tuples()}
    rows = conn.execute(select(tk.c.id, tk.c.kind, tk.c.sku, tk.c.title, tk.c.severity, tk.c.owner_role,
                               tk.c.owner, tk.c.due_at, tk.c.created_at)
                        .where(tk.c.status == "open")
                        .order_by(tk.c.due_at.is_(None), tk.c.due_at, tk.c.id).limit(limit)).all()
    items = [{"id": r.id, "kind": r.kind, "sku": r.sku, "title": r.title, "severity": r.severity,
              "owner_role": r.owner_role, "owner": r.owner, "due_at": _iso(r.due_at),
              "overdue": r.due_at is not None and r.due_at < now, "created_at": _iso(r.created_at)} for r in rows]
    return {"open": int(total), "overdue": int(overdue), "taken": int(taken), "by_kind": by_kind, "items": items}


def open_incidents(conn: Connection, limit: int = 10) -> dict[str, Any]:
    i = t.incidents
    total, value = conn.execute(select(func.count(), func.coalesce(func.sum(i.c.value), 0))
                                .where(i.c.status == "open")).one()
    by_severity = {s: int(n) for s, n in conn.execute(
        select(i.c.severity, func.count()).where(i.c.status == "open").group_by(i.c.severity)).tuples()}
    rows = conn.execute(select(i.c.id, i.c.kind, i.c.sku, i.c.severity, i.c.cause, i.c.value, i.c.opened_at)
                        .where(i.c.status == "open").order_by(i.c.id.desc()).limit(limit)).all()
    items = [{"id": r.id, "kind": r.kind, "sku": r.sku, "severity": r.severity, "cause": r.cause,
              "value": round(float(r.value), 2), "opened_at": _iso(r.opened_at)} for r in rows]
    return {"open": int(total), "value": round(float(value), 2), "by_severity": by_severity, "items": items}


def approval_queue(conn: Connection, now: datetime, limit: int = 10) -> dict[str, Any]:
    """Drafts waiting for an approver (status pending), the oldest first: they are the nearest to expiring."""
    d = t.drafts
    total, oldest = conn.execute(select(func.count(), func.min(d.c.created_at)).where(d.c.status == "pending")).one()
    rows = conn.execute(select(d.c.id, d.c.kind, d.c.customer_id, d.c.order_id, d.c.sku, d.c.created_at,
                               d.c.expires_at).where(d.c.status == "pending")
                        .order_by(d.c.created_at, d.c.id).limit(limit)).all()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    items = [{"id": r.id, "kind": r.kind, "customer_id": r.customer_id, "order_id": r.order_id, "sku": r.sku,
              "created_at": _iso(r.created_at), "expires_at": _iso(r.expires_at)} for r in rows]
    return {"pending": int(total),
            "oldest_minutes": int((now - oldest).total_seconds() // 60) if oldest is not None else None,
            "items": items}


def dead_letters(conn: Connection) -> dict[str, Any]:
    """Inbound events parked because something they name is unknown, and the order value they hold up."""
    dl = t.dead_letters
    n, value = conn.execute(select(func.count(), func.coalesce(func.sum(dl.c.impact_value), 0))
                            .where(dl.c.status == "parked")).one()
    return {"parked": int(n), "value": round(float(value), 2)}


def fingerprint(conn: Connection) -> str:
    """A value that changes whenever a dashboard figure may have: one round trip of index-served maxima.

    New decisions, events, messages, drafts, tasks and incidents raise a max id; a task taken or closed
    and a draft decided move a max time; a PO changed moves its updated_at. A message's later status
    change (sent, dead) moves none of these: the dashboard also refreshes in full now and then.
    """
    probes = [
        select(func.max(t.domain_events.c.id)), select(func.max(t.inbox.c.id)), select(func.max(t.audit_log.c.id)),
        select(func.max(t.outbox.c.id)), select(func.max(t.drafts.c.updated_at)), select(func.max(t.tasks.c.id)),
        select(func.max(t.tasks.c.taken_at)), select(func.max(t.tasks.c.closed_at)),
        select(func.max(t.incidents.c.id)), select(func.count()).select_from(t.incidents)
        .where(t.incidents.c.status == "open"),
        select(func.max(t.dead_letters.c.updated_at)), select(func.max(t.purchase_orders.c.updated_at)),
    ]
    row = conn.execute(select(*[p.scalar_subquery() for p in probes])).one()
    return "|".join("" if v is None else str(v) for v in row)
