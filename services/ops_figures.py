"""Figures of the operations dashboard and the weekly report, read from the store.

A waiting line is one in status backordered or partially_allocated; its waiting units are
qty - qty_allocated (qty_allocated counts shipped units too, so shipped units are never waiting)
and its value is those units at the line's unit price. Every grouping here is computed by the
database (GROUP BY / CASE), so the figures stay cheap at tens of thousands of waiting lines.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, case, func, literal, select

from backorder.config import Settings
from store import tables as t
from store.allocation_io import WAITING_STATUSES as WAITING

GROUPINGS = ("sku", "warehouse", "supplier", "tier", "customer")
NONE_KEY = "(none)"
# (label, oldest age in days the bucket holds); the last bucket is open-ended.
BUCKETS: tuple[tuple[str, int | None], ...] = (("0-2", 2), ("3-7", 7), ("8-14", 14), ("15-30", 30), ("30+", None))

_l, _o, _c, _p = t.order_lines, t.orders, t.customers, t.products


def waiting_units() -> ColumnElement[Any]:
    return _l.c.qty - _l.c.qty_allocated


def waiting_value() -> ColumnElement[Any]:
    return waiting_units() * _l.c.unit_price


def waited_since() -> ColumnElement[Any]:
    """When the line started waiting: backordered_at, or the order's placed_at for a line not yet stamped."""
    return func.coalesce(_l.c.backordered_at, _o.c.placed_at)


def group_key(by: str) -> ColumnElement[Any]:
    """The key a waiting line is counted under for `by` (the same expression filters the list behind it).

    warehouse: the warehouse serving the customer's region (the lowest id when a region has several),
    which is where the allocation looks first; "(none)" for a customer in a region without one.
    """
    if by == "sku":
        return _l.c.sku
    if by == "supplier":
        return func.coalesce(_p.c.supplier_id, literal(NONE_KEY))
    if by == "tier":
        return _c.c.tier
    if by == "customer":
        return _o.c.customer_id
    if by == "warehouse":
        w = t.warehouses
        home = select(func.min(w.c.warehouse_id)).where(w.c.region == _c.c.region).scalar_subquery()
        return func.coalesce(home, literal(NONE_KEY))
    raise ValueError(f"by: {by!r} is not one of {', '.join(GROUPINGS)}")


def waiting_from(stmt: Select[Any]) -> Select[Any]:
    """Join what every waiting-line figure may group by: order (customer, placed_at), customer, product."""
    return (stmt.select_from(_l).join(_o, _o.c.order_id == _l.c.order_id)
            .join(_c, _c.c.customer_id == _o.c.customer_id).join(_p, _p.c.sku == _l.c.sku)
            .where(_l.c.status.in_(WAITING)))


def open_backorders(conn: Connection, by: str) -> list[dict[str, Any]]:
    """Waiting lines grouped by `by`: [{"key", "lines", "units", "value"}], highest value first."""
    key = group_key(by).label("key")
    value = func.coalesce(func.sum(waiting_value()), 0)
    rows = conn.execute(waiting_from(select(key, func.count().label("lines"),
                                             func.coalesce(func.sum(waiting_units()), 0).label("units"),
                                             value.label("value")))
                        .group_by(key)).all()
    out = [{"key": str(r.key), "lines": int(r.lines), "units": int(r.units), "value": round(float(r.value), 2)}
           for r in rows]
    return sorted(out, key=lambda g: (-g["value"], g["key"]))


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def bucket_case(today: date) -> ColumnElement[Any]:
    """The aging bucket of a waiting line, by whole UTC days between the day it started waiting and `today`."""
    since = waited_since()
    whens = [(since >= day_start(today - timedelta(days=oldest)), label)
             for label, oldest in BUCKETS if oldest is not None]
    return case(*whens, else_=BUCKETS[-1][0])


def aging(conn: Connection, today: date) -> list[dict[str, Any]]:
    """Every bucket in order, empty ones included: [{"bucket", "lines", "units", "value"}]."""
    bucket = bucket_case(today).label("bucket")
    rows = {r.bucket: r for r in conn.execute(waiting_from(select(
        bucket, func.count().label("lines"), func.coalesce(func.sum(waiting_units()), 0).label("units"),
        func.coalesce(func.sum(waiting_value()), 0).label("value"))).group_by(bucket))}
    out = []
    for label, _ in BUCKETS:
        r = rows.get(label)
        out.append({"bucket": label, "lines": int(r.lines) if r else 0, "units": int(r.units) if r else 0,
                    "value": round(float(r.value), 2) if r else 0.0})
    return out


def revenue_at_risk(conn: Connection) -> float:
    """The value of every waiting unit at its line's unit price."""
    value = conn.execute(select(func.coalesce(func.sum(waiting_value()), 0))
                         .where(_l.c.status.in_(WAITING))).scalar_one()
    return round(float(value), 2)


def totals(conn: Connection) -> dict[str, Any]:
    """Waiting lines, units and value over everything (the headline figures)."""
    lines, units, value = conn.execute(select(
        func.count(), func.coalesce(func.sum(waiting_units()), 0), func.coalesce(func.sum(waiting_value()), 0))
        .where(_l.c.status.in_(WAITING))).one()
    return {"lines": int(lines), "units": int(units), "value": round(float(value), 2)}


def in_bucket(today: date, label: str) -> ColumnElement[bool]:
    """The filter of one aging bucket (for the list behind its number)."""
    since = waited_since()
    bounds = dict(BUCKETS)
    if label not in bounds:
        raise ValueError(f"bucket: {label!r} is not one of {', '.join(bounds)}")
    labels = [b for b, _ in BUCKETS]
    i = labels.index(label)
    oldest = bounds[label]
    newer = bounds[labels[i - 1]] if i > 0 else None
    cond = []
    if oldest is not None:
        cond.append(since >= day_start(today - timedelta(days=oldest)))
    if newer is not None:
        cond.append(since < day_start(today - timedelta(days=newer)))
    return and_(literal(True), *cond)


def next_inbound(conn: Connection, today: date, limit: int = 8, lines_per_po: int = 5) -> list[dict[str, Any]]:
    """The next open purchase orders by expected date, with the waiting lines each will cover.

    Coverage is the ETA projection already stored on the lines (allocation/eta.py): a waiting line whose
    eta_reason is "po:<po_id>" gets its last waiting unit from that PO. Undated POs come last.
    """
    po, pl = t.purchase_orders, t.po_lines
    open_qty = func.sum(pl.c.qty - pl.c.received)
    rows = conn.execute(
        select(po.c.po_id, po.c.supplier_id, po.c.warehouse_id, po.c.expected_at,
               func.count().label("skus"), open_qty.label("units"))
        .join(pl, pl.c.po_id == po.c.po_id)
        .where(po.c.status == "open", pl.c.qty > pl.c.received)
        .group_by(po.c.po_id, po.c.supplier_id, po.c.warehouse_id, po.c.expected_at)
        .order_by(po.c.expected_at.is_(None), po.c.expected_at, po.c.po_id).limit(limit)).all()
    if not rows:
        return []
    reasons = [f"po:{r.po_id}" for r in rows]
    covered = {r.eta_reason: r for r in conn.execute(
        select(_l.c.eta_reason, func.count().label("lines"), func.sum(waiting_units()).label("units"),
               func.sum(waiting_value()).label("value"))
        .where(_l.c.status.in_(WAITING), _l.c.eta_reason.in_(reasons)).group_by(_l.c.eta_reason))}
    samples: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(
            select(_l.c.eta_reason, _l.c.order_id, _l.c.line_id, _l.c.sku, _l.c.eta, _o.c.customer_id,
                   waiting_units().label("waiting"))
            .join(_o, _o.c.order_id == _l.c.order_id)
            .where(_l.c.status.in_(WAITING), _l.c.eta_reason.in_(reasons))
            .order_by(_l.c.eta_reason, _l.c.eta, _o.c.placed_at, _l.c.id)):
        got = samples.setdefault(r.eta_reason, [])
        if len(got) < lines_per_po:
            got.append({"order_id": r.order_id, "line_id": r.line_id, "sku": r.sku, "customer_id": r.customer_id,
                        "waiting": int(r.waiting), "eta": r.eta.isoformat() if r.eta else None})
    out = []
    for r, reason in zip(rows, reasons, strict=True):
        c = covered.get(reason)
        out.append({
            "po_id": r.po_id, "supplier_id": r.supplier_id, "warehouse_id": r.warehouse_id,
            "expected_at": r.expected_at.isoformat() if r.expected_at else None,
            "overdue": r.expected_at is not None and r.expected_at < today,
            "skus": int(r.skus), "units": int(r.units),
            "covers_lines": int(c.lines) if c else 0, "covers_units": int(c.units) if c else 0,
            "covers_value": round(float(c.value), 2) if c else 0.0, "lines": samples.get(reason, []),
        })
    return out


def fulfillment(conn: Connection, today: date, days: int = 14) -> dict[str, Any]:
    """Fill rate and lines opened / resolved per UTC day over the last `days` days (today included).

    fill_rate: units allocated (shipped included) over units ordered, on the lines of orders placed in
    the window (cancelled lines left out); line_fill_rate: the share of those lines with nothing waiting.
    resolved: backorder_resolved decisions (a waiting line allocated in full); opened: lines that
    started to wait that day (still waiting or not).
    """
    first = today - timedelta(days=days - 1)
    since = day_start(first)
    ordered, allocated, n_lines, n_filled = conn.execute(
        select(func.coalesce(func.sum(_l.c.qty), 0), func.coalesce(func.sum(_l.c.qty_allocated), 0), func.count(),
               func.coalesce(func.sum(case((_l.c.qty_allocated >= _l.c.qty, 1), else_=0)), 0))
        .join(_o, _o.c.order_id == _l.c.order_id)
        .where(_o.c.placed_at >= since, _l.c.status != "cancelled")).one()
    d = t.domain_events
    resolved = _per_day(conn, d.c.created_at, first, days, d.c.type == "backorder_resolved")
    opened = _per_day(conn, _l.c.backordered_at, first, days, _l.c.backordered_at.is_not(None))
    per_day = [{"day": (first + timedelta(days=i)).isoformat(), "opened": opened[i], "resolved": resolved[i]}
               for i in range(days)]
    return {
        "days": days, "since": first.isoformat(),
        "fill_rate": round(int(allocated) / int(ordered), 4) if ordered else None,
        "line_fill_rate": round(int(n_filled) / int(n_lines), 4) if n_lines else None,
        "lines_ordered": int(n_lines), "units_ordered": int(ordered), "units_allocated": int(allocated),
        "resolved": sum(resolved), "opened": sum(opened), "per_day": per_day,
    }


def _per_day(conn: Connection, at: ColumnElement[Any], first: date, days: int,
             where: ColumnElement[bool]) -> list[int]:
    """Rows per UTC day from `first`, counted in the database with one CASE (no dialect's date functions)."""
    day = case(*[(at < day_start(first + timedelta(days=i + 1)), i) for i in range(days)], else_=days).label("d")
    counts = {int(r.d): int(r.n) for r in conn.execute(
        select(day, func.count().label("n")).where(where, at >= day_start(first)).group_by(day))}
    return [counts.get(i, 0) for i in range(days)]


def waiting_summary(conn: Connection, today: date) -> dict[str, Any]:
    """totals, open_backorders for every grouping and aging, from one read of the waiting lines.

    Equal to calling those functions one by one (tests check it), in half the time on SQLite: each of them is
    a join and GROUP BY over every waiting line, and the dashboard wants all seven at once.
    """
    w = t.warehouses
    home: dict[str | None, str] = {}
    for region, wid in conn.execute(select(w.c.region, func.min(w.c.warehouse_id)).group_by(w.c.region)).tuples():
        home[region] = wid
    rows = conn.execute(waiting_from(select(
        _l.c.sku, _p.c.supplier_id, _c.c.tier, _o.c.customer_id, _c.c.region, waiting_units().label("units"),
        _l.c.unit_price, waited_since().label("since")))).all()
    groups: dict[str, dict[str, list[Any]]] = {by: {} for by in GROUPINGS}
    buckets: dict[str, list[Any]] = {label: [0, 0, Decimal(0)] for label, _ in BUCKETS}
    edges = [(oldest, label) for label, oldest in BUCKETS if oldest is not None]
    units_all, value_all = 0, Decimal(0)
    for r in rows:
        units = int(r.units)
        value = Decimal(r.unit_price or 0) * units
        units_all += units
        value_all += value
        keys = (r.sku, r.supplier_id or NONE_KEY, r.tier, r.customer_id, home.get(r.region, NONE_KEY)
                if r.region is not None else NONE_KEY)
        for by, key in zip(("sku", "supplier", "tier", "customer", "warehouse"), keys, strict=True):
            g = groups[by].setdefault(str(key), [0, 0, Decimal(0)])
            g[0] += 1
            g[1] += units
            g[2] += value
        age = (today - r.since.astimezone(UTC).date()).days
        label = next((lb for oldest, lb in edges if age <= oldest), BUCKETS[-1][0])
        b = buckets[label]
        b[0] += 1
        b[1] += units
        b[2] += value
    by_key = {by: sorted(({"key": k, "lines": v[0], "units": v[1], "value": round(float(v[2]), 2)}
                          for k, v in g.items()), key=lambda x: (-x["value"], x["key"])) for by, g in groups.items()}
    return {
        "totals": {"lines": len(rows), "units": units_all, "value": round(float(value_all), 2)},
        "by": by_key,
        "aging": [{"bucket": label, "lines": v[0], "units": v[1], "value": round(float(v[2]), 2)}
                  for label, v in buckets.items()],
    }


def snapshot(conn: Connection, now: datetime, settings: Settings) -> dict[str, Any]:
    """Everything the dashboard shows, as plain JSON-able values (GET /dashboard/data)."""
    from services import ops_queues as q  # the queues read other parts' tables; kept apart from the figures
    from services.notify_kpis import notification_kpis

    cfg = settings.dashboard
    today = now.astimezone(UTC).date()
    if conn.dialect.name == "postgresql":
        # PostgreSQL runs the seven GROUP BYs faster than it ships every waiting line to Python; SQLite the
        # other way round (bench/dashboard.py). Both give the same figures (tests/integration/test_ops_figures.py).
        waiting = {"totals": totals(conn), "by": {by: open_backorders(conn, by) for by in GROUPINGS},
                   "aging": aging(conn, today)}
    else:
        waiting = waiting_summary(conn, today)
    return {
        "generated_at": now.astimezone(UTC).isoformat(), "today": today.isoformat(),
        "totals": waiting["totals"], "revenue_at_risk": waiting["totals"]["value"],
        "by": {by: {"keys": len(rows), "rows": rows[:cfg.top]} for by, rows in waiting["by"].items()},
        "aging": waiting["aging"],
        "inbound": next_inbound(conn, today, cfg.inbound_limit),
        "fulfillment": fulfillment(conn, today, cfg.window_days),
        "notifications": notification_kpis(conn, now, cfg.kpi_days),
        "tasks": q.open_tasks(conn, now, cfg.top), "incidents": q.open_incidents(conn, cfg.top),
        "approvals": q.approval_queue(conn, now, cfg.top), "dead_letters": q.dead_letters(conn),
    }
