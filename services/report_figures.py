"""The figures of the weekly backorder report, one set-based query per section (SQLite and PostgreSQL).

What each figure means (docs/reports.md says it for readers):
- a backorder is an order line that waited for stock (`backordered_at` set); it is *opened* at that
  stamp and *resolved* at its first `backorder_resolved` event (allocated in full); cancelled or
  substituted lines stop waiting without being resolved;
- times between stamps come from the lines and the domain events written with each decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, String, and_, case, cast, func, or_, select, union_all

from services import ops_figures
from services.report_sql import (
    at,
    backorders_before,
    bucket,
    by_po,
    closings,
    days,
    first_event,
    first_times,
    in_range,
    stats,
)
from store import tables as t

l, o, c, p, s = t.order_lines, t.orders, t.customers, t.products, t.suppliers
ob, au, tk = t.outbox, t.audit_log, t.tasks
po, pl = t.purchase_orders, t.po_lines
# Tasks that ask someone to buy: the overdue workflow's review and the reorder suggestion.
PURCHASE_TASKS = ("procurement_review", "purchase_suggestion")
# Outbox rows that reached nobody (or never will) are not touches.
NOT_TOUCHES = ("cancelled", "dead", "digested")
# Actors of audit rows written by people rather than the system (chat commands write chat:<staff id>).
STAFF_PREFIX = "chat:"


@dataclass(frozen=True)
class Period:
    """One ISO week [start, end) in the report's time zone, and the weeks of its trend (oldest first)."""

    label: str  # 2026-W09
    start: datetime
    end: datetime
    timezone: str
    bounds: tuple[datetime, ...]  # trend week starts ... end: len = weeks + 1
    labels: tuple[str, ...]

    @property
    def trend_start(self) -> datetime:
        return self.bounds[0]


def trend(conn: Connection, period: Period) -> list[dict[str, Any]]:
    """Per week: backorders opened, resolved and cancelled; lines placed and filled on the spot (fill rate)."""
    weeks = [{"week": w, "start": b.date().isoformat(), "opened": 0, "resolved": 0, "closed_unresolved": 0,
              "lines_placed": 0, "filled_at_once": 0, "fill_rate": None}
             for w, b in zip(period.labels, period.bounds, strict=False)]
    lo, hi = period.trend_start, period.end
    wk = bucket(l.c.backordered_at, period.bounds).label("wk")
    for r in conn.execute(select(wk, func.count()).where(in_range(l.c.backordered_at, lo, hi)).group_by(wk)):
        weeks[r[0]]["opened"] = r[1]
    cl = closings()
    resolved = bucket(cl.c.resolved_at, period.bounds).label("wk")
    for r in conn.execute(select(resolved, func.count()).where(in_range(cl.c.resolved_at, lo, hi)).group_by(resolved)):
        weeks[r[0]]["resolved"] = r[1]
    dropped = bucket(cl.c.closed_at, period.bounds).label("wk")
    q = (select(dropped, func.count()).where(in_range(cl.c.closed_at, lo, hi), cl.c.resolved_at.is_(None))
         .group_by(dropped))
    for r in conn.execute(q):
        weeks[r[0]]["closed_unresolved"] = r[1]
    placed = bucket(o.c.placed_at, period.bounds).label("wk")
    q = (select(placed, func.count(), func.count(l.c.backordered_at))
         .select_from(l.join(o, o.c.order_id == l.c.order_id)).where(in_range(o.c.placed_at, lo, hi)).group_by(placed))
    for r in conn.execute(q):
        weeks[r[0]].update(lines_placed=r[1], filled_at_once=r[1] - r[2],
                           fill_rate=round((r[1] - r[2]) / r[1], 4) if r[1] else None)
    return weeks


def _late_lines(conn: Connection, period: Period) -> Any:
    """Backorders late in the week: promised before its end, not allocated in full by the promised day.

    days_late runs from the promised day to the allocation, or to the week's end for one still waiting.
    """
    cl = backorders_before(period.end)
    stop = func.coalesce(cl.c.resolved_at, at(period.end))
    return (select(l.c.id, l.c.sku, l.c.qty, o.c.customer_id, p.c.supplier_id,
                   days(conn, stop, o.c.promised_date).label("days_late"))
            .select_from(cl.join(l, l.c.id == cl.c.line_pk).join(o, o.c.order_id == l.c.order_id)
                         .join(p, p.c.sku == l.c.sku))
            .where(l.c.backordered_at.is_not(None), l.c.backordered_at < at(period.end),
                   o.c.promised_date.is_not(None), o.c.promised_date < period.end.date(),
                   l.c.status.notin_(("cancelled", "substituted")),
                   or_(cl.c.closed_at.is_(None), cl.c.closed_at >= at(period.start)),
                   days(conn, stop, o.c.promised_date) >= 1)
            .subquery("late"))


def top_delays(conn: Connection, period: Period, limit: int) -> dict[str, list[dict[str, Any]]]:
    """SKUs and suppliers with the most days late (summed over their late lines)."""
    late = _late_lines(conn, period)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, key, label in (("skus", late.c.sku, p.c.name), ("suppliers", late.c.supplier_id, s.c.name)):
        joined = (late.outerjoin(p, p.c.sku == late.c.sku) if name == "skus"
                  else late.outerjoin(s, s.c.supplier_id == late.c.supplier_id))
        total = func.sum(late.c.days_late)
        q = (select(key.label("key"), func.max(label).label("name"), func.count().label("lines"),
                    func.sum(late.c.qty).label("units"), total.label("days"), func.max(late.c.days_late).label("worst"))
             .select_from(joined).group_by(key).order_by(total.desc(), key).limit(limit))
        out[name] = [{"key": r.key or ops_figures.NONE_KEY, "name": r.name or "", "late_lines": r.lines,
                      "units": int(r.units or 0), "days_late": round(float(r.days), 1),
                      "avg_days_late": round(float(r.days) / r.lines, 1), "worst_days_late": round(float(r.worst), 1)}
                     for r in conn.execute(q)]
    return out


def cycle_times(conn: Connection, period: Period) -> dict[str, Any]:
    """Hours from backordered to allocated (lines resolved in the week), allocated to shipped and
    backordered to shipped (backorders shipped in the week)."""
    cl = closings()
    to_alloc = conn.execute(select(days(conn, cl.c.resolved_at, l.c.backordered_at))
                            .select_from(cl.join(l, l.c.id == cl.c.line_pk))
                            .where(l.c.backordered_at.is_not(None),
                                   in_range(cl.c.resolved_at, period.start, period.end))).scalars().all()
    ft = first_times(resolved_at="backorder_resolved", shipped_at="line_shipped")
    q = (select(days(conn, ft.c.shipped_at, ft.c.resolved_at), days(conn, ft.c.shipped_at, l.c.backordered_at))
         .select_from(ft.join(l, l.c.id == ft.c.line_pk))
         .where(l.c.backordered_at.is_not(None), ft.c.resolved_at.is_not(None),
                in_range(ft.c.shipped_at, period.start, period.end)))
    rows = conn.execute(q).all()
    return {"backordered_to_allocated_h": stats(to_alloc, 24),
            "allocated_to_shipped_h": stats([r[0] for r in rows], 24),
            "backordered_to_shipped_h": stats([r[1] for r in rows], 24)}


def _requests(conn: Connection) -> Any:
    """Every purchase request per SKU: a purchase task opened, or a PO first heard of (its first po.updated)."""
    first_po = by_po("po.updated")
    return union_all(
        select(tk.c.sku.label("sku"), tk.c.created_at.label("at")).where(tk.c.kind.in_(PURCHASE_TASKS),
                                                                         tk.c.sku.is_not(None)),
        select(pl.c.sku.label("sku"), first_po.c.at.label("at")).join(first_po, first_po.c.po_id == pl.c.po_id),
    ).subquery("requests")


def shortage_to_request(conn: Connection, period: Period, limit: int) -> dict[str, Any]:
    """Per SKU that went short in the week (its first backorder then): hours to the first purchase request after."""
    short = (select(l.c.sku, func.min(l.c.backordered_at).label("short_at"))
             .where(in_range(l.c.backordered_at, period.start, period.end)).group_by(l.c.sku).subquery("short"))
    rq = _requests(conn)
    first = (select(short.c.sku, short.c.short_at, func.min(rq.c.at).label("asked_at"))
             .select_from(short.outerjoin(rq, and_(rq.c.sku == short.c.sku, rq.c.at >= short.c.short_at)))
             .group_by(short.c.sku, short.c.short_at).subquery("first_request"))
    rows = conn.execute(select(first.c.sku, days(conn, first.c.asked_at, first.c.short_at))
                        .order_by(first.c.short_at, first.c.sku)).all()
    waiting = [r[0] for r in rows if r[1] is None]
    return {"skus_short": len(rows), "with_request": len(rows) - len(waiting),
            "hours": stats([r[1] for r in rows if r[1] is not None], 24),
            "without_request": waiting[:limit]}


def split_shipments(conn: Connection, period: Period) -> dict[str, Any]:
    """Lines first shipped in the week, and how many of them left from more than one warehouse or in several
    shipments."""
    sh = first_event("line_shipped", "shipped_at")
    a = t.allocations
    whs = (select(a.c.line_pk, func.count(func.distinct(a.c.warehouse_id)).label("whs"))
           .where(a.c.status == "shipped").group_by(a.c.line_pk).subquery("whs"))
    split = or_(sh.c.n > 1, func.coalesce(whs.c.whs, 0) > 1)
    shipped, splits = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((split, 1), else_=0)), 0))
        .select_from(sh.outerjoin(whs, whs.c.line_pk == sh.c.line_pk))
        .where(in_range(sh.c.shipped_at, period.start, period.end))).one()
    return {"lines_shipped": shipped, "split": splits, "rate": round(splits / shipped, 4) if shipped else None}


def touches(conn: Connection, period: Period, staff_ids: list[str]) -> dict[str, Any]:
    """Messages (outbox) and manual staff actions (audit log) about the backorders opened in the week."""
    cohort = (select(l.c.id, l.c.order_id, l.c.sku, (l.c.order_id + "/" + l.c.line_id).label("ref"))
              .where(in_range(l.c.backordered_at, period.start, period.end))
              # Materialized, so it drives the joins below (SQLite would otherwise scan it once per audit row).
              .cte("cohort").prefix_with("MATERIALIZED"))
    lines = conn.execute(select(func.count()).select_from(cohort)).scalar_one()
    messages = conn.execute(
        select(func.count()).select_from(cohort.join(ob, and_(
            ob.c.order_id == cohort.c.order_id, or_(ob.c.sku.is_(None), ob.c.sku == cohort.c.sku))))
        .where(ob.c.status.notin_(NOT_TOUCHES), ob.c.kind != "weekly_report")).scalar_one()
    by_staff = or_(au.c.actor.like(STAFF_PREFIX + "%"), au.c.actor.in_(staff_ids or [""]),
                   au.c.actor.in_(select(t.staff_members.c.staff_id)))
    d = t.drafts
    # One equality join per kind of entity (an OR of them would scan the audit log once per backorder): the
    # line itself, its order, and the drafts written about its order (an approval is a staff action).
    manual = sum(conn.execute(select(func.count()).select_from(joined).where(by_staff)).scalar_one() for joined in (
        cohort.join(au, and_(au.c.entity == "order_line", au.c.entity_id == cohort.c.ref)),
        cohort.join(au, and_(au.c.entity == "order", au.c.entity_id == cohort.c.order_id)),
        cohort.join(d, d.c.order_id == cohort.c.order_id)
        .join(au, and_(au.c.entity == "draft", au.c.entity_id == cast(d.c.id, String))),
    ))
    return {"backorders": lines, "messages": messages, "manual_actions": manual,
            "per_backorder": round((messages + manual) / lines, 2) if lines else None}


def supplier_lead_times(conn: Connection, period: Period, limit: int) -> list[dict[str, Any]]:
    """Per supplier, POs that arrived in the trend window: promised (expected_at) vs actual (first receipt)."""
    arrived = by_po("inventory.received")
    late = days(conn, arrived.c.at, po.c.expected_at)
    q = (select(po.c.supplier_id, func.max(s.c.name).label("name"), func.count().label("pos"),
                func.sum(case((late < 1, 1), else_=0)).label("on_time"),
                func.avg(late).label("avg_late"), func.max(late).label("worst"))
         .select_from(po.join(arrived, arrived.c.po_id == po.c.po_id).outerjoin(s, s.c.supplier_id == po.c.supplier_id))
         .where(in_range(arrived.c.at, period.trend_start, period.end), po.c.expected_at.is_not(None))
         .group_by(po.c.supplier_id))
    out = {r.supplier_id: {"supplier": r.supplier_id, "name": r.name or "", "pos_arrived": r.pos,
                           "on_time": r.on_time, "on_time_rate": round(r.on_time / r.pos, 4),
                           "avg_days_late": round(float(r.avg_late), 1), "worst_days_late": round(float(r.worst), 1),
                           "open_overdue": 0}
           for r in conn.execute(q)}
    overdue = (select(po.c.supplier_id, func.count())
               .where(po.c.status == "open", po.c.expected_at < period.end.date(),
                      po.c.po_id.notin_(select(arrived.c.po_id))).group_by(po.c.supplier_id))
    for sid, n in conn.execute(overdue):
        out.setdefault(sid, {"supplier": sid, "name": "", "pos_arrived": 0, "on_time": 0, "on_time_rate": None,
                             "avg_days_late": None, "worst_days_late": None, "open_overdue": 0})["open_overdue"] = n
    ranked = sorted(out.values(), key=lambda r: (-(r["avg_days_late"] or 0), -r["open_overdue"], r["supplier"]))
    return ranked[:limit]


def customers_affected(conn: Connection, period: Period, limit: int) -> list[dict[str, Any]]:
    """Customers with the most backorders waiting at some point in the week, and what still waits now."""
    cl = backorders_before(period.end)
    waits = func.sum(case((l.c.status.in_(ops_figures.WAITING), ops_figures.waiting_value()), else_=0))
    q = (select(o.c.customer_id, func.max(c.c.name).label("name"), func.max(c.c.tier).label("tier"),
                func.count().label("lines"), func.sum(l.c.qty).label("units"), waits.label("value"),
                func.max(days(conn, func.coalesce(cl.c.closed_at, at(period.end)), l.c.backordered_at))
                .label("longest"))
         .select_from(cl.join(l, l.c.id == cl.c.line_pk).join(o, o.c.order_id == l.c.order_id)
                      .join(c, c.c.customer_id == o.c.customer_id))
         .where(l.c.backordered_at.is_not(None), l.c.backordered_at < at(period.end),
                or_(cl.c.closed_at.is_(None), cl.c.closed_at >= at(period.start)))
         .group_by(o.c.customer_id).order_by(func.count().desc(), o.c.customer_id).limit(limit))
    return [{"customer": r.customer_id, "name": r.name, "tier": r.tier, "backorders": r.lines,
             "units": int(r.units or 0), "value_waiting": round(float(r.value or 0), 2),
             "longest_wait_days": round(float(r.longest or 0), 1)} for r in conn.execute(q)]


def snapshot(conn: Connection, today: date) -> dict[str, Any]:
    """Aging and revenue at risk as they stand when the report is built (the dashboard's figures)."""
    return {"aging": ops_figures.aging(conn, today), "revenue_at_risk": round(ops_figures.revenue_at_risk(conn), 2),
            "open": ops_figures.totals(conn)}

