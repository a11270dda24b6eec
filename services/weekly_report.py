"""The weekly backorder report: its figures for one ISO week, and its delivery once a week, cluster-wide.

`build(ctx, week)` reads the store (one connection, set-based queries in services/report_figures.py);
`deliver_due(ctx)` is the scheduler's `weekly_report` job: it builds last week's report, records it in
`reports` (UNIQUE(kind, period_start): the first worker to insert wins, any other skips) and, in the same
transaction, queues its messages in the outbox (services/report_delivery.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from services import report_figures as rf
from services.context import Context
from store import tables as t
from store.db import unit_of_work
from store.upsert import dialect_insert

KIND = "weekly"
WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def week_label(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _monday(label: str) -> date:
    m = WEEK.match(label.strip())
    if not m:
        raise ValueError(f"week {label!r}: expected an ISO week such as 2026-W09")
    try:
        return date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    except ValueError:
        raise ValueError(f"week {label!r}: {m.group(1)} has no week {m.group(2)}") from None


def period(week: str | None, now: datetime, tz: str, weeks: int) -> rf.Period:
    """The ISO week `week` (default: the last complete week at `now`) in `tz`, and the `weeks` of its trend."""
    zone = ZoneInfo(tz)
    monday = _monday(week) if week else now.astimezone(zone).date()
    monday -= timedelta(days=monday.weekday())
    if not week:
        monday -= timedelta(days=7)

    def start_of(d: date) -> datetime:
        return datetime.combine(d, time(), tzinfo=zone).astimezone(UTC)

    mondays = [monday - timedelta(days=7 * i) for i in range(weeks - 1, -1, -1)]
    bounds = tuple(start_of(d) for d in [*mondays, monday + timedelta(days=7)])
    return rf.Period(label=week_label(monday), start=bounds[-2], end=bounds[-1], timezone=tz, bounds=bounds,
                     labels=tuple(week_label(d) for d in mondays))


def build(ctx: Context, week: str | None = None) -> dict[str, Any]:
    """Every figure of the report for `week` (default: last complete week), JSON-ready."""
    cfg = ctx.settings.report
    now = ctx.now()
    p = period(week, now, cfg.timezone, cfg.weeks)
    staff_ids = list(ctx.settings.staff.members)
    with ctx.engine.connect() as conn:
        trend = rf.trend(conn, p)
        delays = rf.top_delays(conn, p, cfg.top)
        figures: dict[str, Any] = {
            "kind": KIND, "week": p.label, "start": p.start.isoformat(), "end": p.end.isoformat(),
            "first_day": _monday(p.label).isoformat(), "last_day": (_monday(p.label) + timedelta(days=6)).isoformat(),
            "timezone": p.timezone, "generated_at": now.isoformat(), "weeks": len(trend),
            "trend": trend, "this_week": trend[-1],
            **rf.snapshot(conn, now.astimezone(ZoneInfo(p.timezone)).date()),
            "top_skus": delays["skus"], "top_suppliers": delays["suppliers"],
            "cycle_times": rf.cycle_times(conn, p),
            "shortage_to_request": rf.shortage_to_request(conn, p, cfg.top),
            "split_shipments": rf.split_shipments(conn, p),
            "touches": rf.touches(conn, p, staff_ids),
            "supplier_lead_times": rf.supplier_lead_times(conn, p, cfg.top),
            "customers": rf.customers_affected(conn, p, cfg.top),
        }
    return figures


def chart_signature(secret: str, report_id: int, name: str) -> str:
    """What lets a chat service fetch a report's chart without the API token (Teams loads images by URL)."""
    return hmac.new(secret.encode(), f"report-chart:{report_id}:{name}".encode(), hashlib.sha256).hexdigest()[:32]


def stored(ctx: Context, report_id: int) -> dict[str, Any] | None:
    """A recorded report: {"id", "kind", "period_start", "figures", ...} or None."""
    r = t.reports
    with ctx.engine.connect() as conn:
        row = conn.execute(select(r).where(r.c.id == report_id)).mappings().first()
    return dict(row) if row else None


def deliver_due(ctx: Context) -> dict[str, Any] | None:
    """Build and queue last week's report unless some worker already did; returns what was done, or None.

    Figures and files are made before the transaction (a report takes seconds on a large store and
    should not hold SQLite's write lock meanwhile); the insert-or-skip then decides who delivers.
    """
    from services import report_delivery  # renders charts (matplotlib): loaded only when a report is made

    cfg = ctx.settings.report
    if not cfg.enabled:
        return None
    now = ctx.now()
    p = period(None, now, cfg.timezone, cfg.weeks)
    r = t.reports
    with ctx.engine.connect() as conn:
        if conn.execute(select(r.c.id).where(r.c.kind == KIND, r.c.period_start == p.start)).first():
            return None
    figures = build(ctx)
    files = report_delivery.render_files(figures, cfg.attach)
    with unit_of_work(ctx.engine) as conn:
        stmt = dialect_insert(conn, r).on_conflict_do_nothing(index_elements=["kind", "period_start"])
        report_id = conn.execute(stmt.values(
            kind=KIND, period_start=p.start, period_end=p.end, figures=figures, created_at=now, delivered_at=now,
        ).returning(r.c.id)).scalar_one_or_none()
        if report_id is None:
            return None
        queued = report_delivery.queue(conn, ctx, report_id, figures, files, now)
    return {"report_id": report_id, "week": p.label, "messages": queued}
