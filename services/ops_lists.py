"""The lists behind the dashboard's numbers: each uses the same filter as the figure that links to it,
so a count on the dashboard and the rows of its list always agree (up to the list's row limit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from services import ops_figures as of
from store import tables as t

LIMIT = 500


@dataclass
class Listing:
    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


def _iso(v: datetime | date | None) -> str | None:
    return v.isoformat() if v else None


def backorders(conn: Connection, today: date, *, by: str | None = None, key: str | None = None,
               bucket: str | None = None, po: str | None = None, limit: int = LIMIT) -> Listing:
    """Waiting lines, oldest first; narrowed to one group (`by` and `key`), aging bucket, or covering PO."""
    lines, orders = t.order_lines, t.orders
    title = "Waiting lines"
    where = []
    if by is not None:
        where.append(of.group_key(by) == (key or ""))
        title += f" · {by} {key}"
    if bucket is not None:
        where.append(of.in_bucket(today, bucket))
        title += f" · waiting {bucket} days"
    if po is not None:
        where.append(lines.c.eta_reason == f"po:{po}")
        title += f" · covered by {po}"
    since = of.waited_since()
    base = of.waiting_from(select(
        lines.c.order_id, lines.c.line_id, lines.c.sku, orders.c.customer_id, t.customers.c.tier,
        t.products.c.supplier_id, lines.c.qty, of.waiting_units().label("waiting"), of.waiting_value().label("value"),
        lines.c.status, since.label("since"), lines.c.eta, lines.c.eta_reason)).where(*where)
    total = conn.execute(of.waiting_from(select(func.count())).where(*where)).scalar_one()
    rows = [{"order": r.order_id, "line": r.line_id, "sku": r.sku, "customer": r.customer_id, "tier": r.tier,
             "supplier": r.supplier_id, "qty": r.qty, "waiting": int(r.waiting),
             "value": round(float(r.value), 2), "status": r.status,
             "waiting_days": (today - r.since.date()).days if r.since else None,
             "eta": _iso(r.eta), "eta_reason": r.eta_reason}
            for r in conn.execute(base.order_by(since, lines.c.id).limit(limit))]
    return Listing(title, ["order", "line", "sku", "customer", "tier", "supplier", "qty", "waiting", "value",
                           "status", "waiting_days", "eta", "eta_reason"], rows, int(total))


def tasks(conn: Connection, now: datetime, *, overdue: bool = False, limit: int = LIMIT) -> Listing:
    tk = t.tasks
    where = [tk.c.status == "open"] + ([tk.c.due_at < now] if overdue else [])
    total = conn.execute(select(func.count()).where(*where)).scalar_one()
    rows = [{"id": r.id, "kind": r.kind, "title": r.title, "sku": r.sku, "severity": r.severity,
             "owner_role": r.owner_role, "owner": r.owner, "due_at": _iso(r.due_at), "created_at": _iso(r.created_at)}
            for r in conn.execute(select(tk).where(*where).order_by(tk.c.due_at.is_(None), tk.c.due_at, tk.c.id)
                                  .limit(limit))]
    return Listing("Overdue tasks" if overdue else "Open tasks",
                   ["id", "kind", "title", "sku", "severity", "owner_role", "owner", "due_at", "created_at"],
                   rows, int(total))


def incidents(conn: Connection, *, limit: int = LIMIT) -> Listing:
    i = t.incidents
    total = conn.execute(select(func.count()).where(i.c.status == "open")).scalar_one()
    rows = [{"id": r.id, "kind": r.kind, "sku": r.sku, "severity": r.severity, "cause": r.cause,
             "mitigation": r.mitigation, "value": round(float(r.value), 2), "opened_at": _iso(r.opened_at)}
            for r in conn.execute(select(i).where(i.c.status == "open").order_by(i.c.id.desc()).limit(limit))]
    return Listing("Open incidents", ["id", "kind", "sku", "severity", "cause", "mitigation", "value", "opened_at"],
                   rows, int(total))


def notifications(conn: Connection, now: datetime, *, status: str | None, days: float,
                  limit: int = LIMIT) -> Listing:
    """Messages created in the KPI window (the window the dashboard's notification figures count)."""
    o = t.outbox
    where = [o.c.created_at >= now - timedelta(days=days)] + ([o.c.status == status] if status else [])
    total = conn.execute(select(func.count()).where(*where)).scalar_one()
    rows = [{"id": r.id, "kind": r.kind, "channel": r.channel, "recipient": r.recipient, "status": r.status,
             "attempts": r.attempts, "error_reason": r.error_reason, "created_at": _iso(r.created_at),
             "sent_at": _iso(r.sent_at)}
            for r in conn.execute(select(o).where(*where).order_by(o.c.id.desc()).limit(limit))]
    label = f"{status} messages" if status else "Messages"
    return Listing(f"{label.capitalize()} · last {days:g} days",
                   ["id", "kind", "channel", "recipient", "status", "attempts", "error_reason", "created_at",
                    "sent_at"], rows, int(total))


def resolved(conn: Connection, day: date, *, limit: int = LIMIT) -> Listing:
    """Lines that stopped waiting (allocated in full) on one UTC day."""
    d = t.domain_events
    where = [d.c.type == "backorder_resolved", d.c.created_at >= of.day_start(day),
             d.c.created_at < of.day_start(day + timedelta(days=1))]
    total = conn.execute(select(func.count()).where(*where)).scalar_one()
    rows = [{"at": _iso(r.created_at), "order": (r.data or {}).get("order_id"), "line": (r.data or {}).get("line_id"),
             "sku": (r.data or {}).get("sku"), "qty": (r.data or {}).get("qty")}
            for r in conn.execute(select(d.c.created_at, d.c.data).where(*where).order_by(d.c.id).limit(limit))]
    return Listing(f"Backorders resolved on {day.isoformat()}", ["at", "order", "line", "sku", "qty"], rows,
                   int(total))


def opened(conn: Connection, day: date, *, limit: int = LIMIT) -> Listing:
    """Lines that started to wait on one UTC day, whatever they are now."""
    lines = t.order_lines
    at = lines.c.backordered_at
    where = [at >= of.day_start(day), at < of.day_start(day + timedelta(days=1))]
    total = conn.execute(select(func.count()).where(*where)).scalar_one()
    rows = [{"at": _iso(r.backordered_at), "order": r.order_id, "line": r.line_id, "sku": r.sku, "qty": r.qty,
             "status": r.status}
            for r in conn.execute(select(lines).where(*where).order_by(lines.c.backordered_at, lines.c.id)
                                  .limit(limit))]
    return Listing(f"Backorders opened on {day.isoformat()}", ["at", "order", "line", "sku", "qty", "status"], rows,
                   int(total))


def dead_letters(conn: Connection, *, limit: int = LIMIT) -> Listing:
    dl, ib = t.dead_letters, t.inbox
    where = [dl.c.status == "parked"]
    total = conn.execute(select(func.count()).where(*where)).scalar_one()
    rows = [{"id": r.id, "event": r.event_id, "type": r.type, "reason": r.reason, "missing": r.missing_key,
             "value": round(float(r.impact_value), 2), "attempts": r.attempts, "created_at": _iso(r.created_at)}
            for r in conn.execute(select(dl.c.id, ib.c.event_id, ib.c.type, dl.c.reason, dl.c.missing_key,
                                         dl.c.impact_value, dl.c.attempts, dl.c.created_at)
                                  .join(ib, ib.c.id == dl.c.inbox_id).where(*where).order_by(dl.c.id).limit(limit))]
    return Listing("Parked inbound events (dead letters)",
                   ["id", "event", "type", "reason", "missing", "value", "attempts", "created_at"], rows, int(total))
