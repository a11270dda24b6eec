"""The backorder workflow: find late backorders, rate them, open tasks and incidents."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, bindparam, insert, select, update

from allocation.model import DomainEvent
from allocation.overdue import find_overdue
from services.context import Context
from services.recording import record
from services.tasks import open_task
from store import allocation_io as io
from store import tables as t
from store.db import unit_of_work


@dataclass
class OverdueReport:
    skus: int = 0
    lines: int = 0
    total_value: float = 0.0
    tasks_opened: int = 0
    incidents_opened: int = 0
    by_sku: list[dict[str, object]] = field(default_factory=list)


def check_overdue(ctx: Context, actor: str = "workflow") -> OverdueReport:
    """Run the workflow once, in one unit of work; safe to run as often as you like.

    A SKU gets at most one open procurement-review task and one open overdue incident; a
    later run updates the incident instead of opening another. delay_detected is emitted for
    a line the first time it is found late and whenever its severity changes.
    """
    today, now = ctx.today(), ctx.now()
    cause = f"check-overdue:{today.isoformat()}"
    report = OverdueReport()
    with unit_of_work(ctx.engine) as conn:
        l, o = t.order_lines, t.orders
        skus = conn.execute(
            select(l.c.sku).join(o, o.c.order_id == l.c.order_id)
            .where(l.c.status.in_(("backordered", "partially_allocated")), o.c.promised_date < today).distinct()
        ).scalars().all()
        if not skus:
            return report
        loaded = io.load_open(conn, skus)
        severities = dict(conn.execute(select(l.c.id, l.c.severity).where(l.c.sku.in_(skus))).tuples().all())
        policy = ctx.settings.allocation_policy(loaded.regions)
        events: list[DomainEvent] = []
        line_updates = []
        for found in find_overdue(loaded.lines, today, policy):
            report.skus += 1
            report.lines += len(found.lines)
            report.total_value += found.total_value
            eta = found.new_eta.isoformat() if found.new_eta else None
            for ln in found.lines:
                sev = found.line_severity[ln.line_id]
                pk = io.line_pk(ln.line_id)
                line_updates.append({"b_id": pk, "severity": sev, "last_checked": now})
                if severities.get(pk) != sev:
                    events.append(DomainEvent("delay_detected", {
                        "line_id": ln.line_id, "order_id": ln.order_id, "sku": ln.sku, "waiting": ln.waiting,
                        "value": round(ln.value, 2), "promised_date": ln.promised_date.isoformat()
                        if ln.promised_date else None, "eta": ln.eta.isoformat() if ln.eta else None,
                        "days_late": found.line_days_late[ln.line_id], "severity": sev,
                        "previous_severity": severities.get(pk),
                    }))
            summary = {"sku": found.sku, "lines": len(found.lines), "value": round(found.total_value, 2),
                       "max_days_late": found.max_days_late, "severity": found.severity, "new_eta": eta}
            report.by_sku.append(summary)
            if open_task(conn, ctx, "procurement_review", sku=found.sku, severity=found.severity, cause=cause,
                         title=f"Review supply of {found.sku}: {len(found.lines)} late line(s), "
                               f"{found.total_value:,.2f} waiting", detail=summary):
                report.tasks_opened += 1
            report.incidents_opened += _record_incident(conn, ctx, found.sku, found.severity, found.total_value,
                                                        eta, summary, cause)
        if line_updates:
            conn.execute(update(l).where(l.c.id == bindparam("b_id"))
                         .values(severity=bindparam("severity"), last_checked=bindparam("last_checked")),
                         line_updates)
        record(conn, ctx, events, loaded.public_ids, cause, now)
    return report


def _record_incident(conn: Connection, ctx: Context, sku: str, severity: str, value: float, eta: str | None,
                     summary: dict[str, object], cause: str) -> int:
    i = t.incidents
    mitigation = f"new ETA {eta}" if eta else "no ETA yet: no open purchase order and no supplier lead time"
    text = (f"{summary['lines']} line(s) of {sku} past their promised date, up to "
            f"{summary['max_days_late']} day(s) late")
    open_id = conn.execute(select(i.c.id).where(i.c.sku == sku, i.c.kind == "overdue_backorder",
                                                i.c.status == "open")).scalar_one_or_none()
    if open_id is not None:
        conn.execute(update(i).where(i.c.id == open_id).values(severity=severity, value=value, cause=text,
                                                               mitigation=mitigation, detail=summary))
        return 0
    new_id = conn.execute(insert(i).values(kind="overdue_backorder", sku=sku, severity=severity, cause=text,
                                           mitigation=mitigation, value=value, detail=summary, status="open",
                                           opened_at=ctx.now()).returning(i.c.id)).scalar_one()
    record(conn, ctx, [DomainEvent("incident_recorded", {"incident_id": new_id, "sku": sku,
                                                              "severity": severity, "cause": text,
                                                              "mitigation": mitigation})], {}, cause, ctx.now())
    io.write_audit(conn, [{"entity": "incident", "entity_id": str(new_id), "action": "opened", "before": None,
                           "after": summary}], "workflow", cause, ctx.now())
    return 1
