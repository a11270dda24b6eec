"""Notification KPIs: delivery rate, time from event to provider acceptance, opt-outs, dead letters."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, String, cast, func, select

from store import tables as t

SAMPLE_LIMIT = 200_000


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[index], 1)


def notification_kpis(conn: Connection, now: datetime, days: float = 7.0) -> dict[str, Any]:
    """Figures over messages created in the last `days` days (time to alert over the newest 200,000 sent)."""
    o, c = t.outbox, t.customers
    since = now - timedelta(days=days)
    by_status = {s: int(n) for s, n in conn.execute(
        select(o.c.status, func.count()).where(o.c.created_at >= since).group_by(o.c.status)).tuples()}
    ok = by_status.get("sent", 0) + by_status.get("delivered", 0)
    dead = by_status.get("dead", 0)
    rows = conn.execute(select(o.c.occurred_at, o.c.sent_at).where(
        o.c.created_at >= since, o.c.status.in_(("sent", "delivered")), o.c.sent_at.is_not(None),
        o.c.occurred_at.is_not(None)).order_by(o.c.id.desc()).limit(SAMPLE_LIMIT)).all()
    latencies = sorted((r.sent_at - r.occurred_at).total_seconds() * 1000 for r in rows)
    dead_reasons = {reason or "unknown": int(n) for reason, n in conn.execute(
        select(o.c.error_reason, func.count()).where(o.c.created_at >= since, o.c.status == "dead")
        .group_by(o.c.error_reason)).tuples()}
    by_channel = {ch: int(n) for ch, n in conn.execute(
        select(o.c.channel, func.count()).where(o.c.created_at >= since, o.c.status.in_(("sent", "delivered")))
        .group_by(o.c.channel)).tuples()}
    customers = int(conn.execute(select(func.count()).select_from(c)).scalar_one())
    prefs = cast(c.c.preferences, String)
    opted_out = int(conn.execute(select(func.count()).where(prefs.like('%"opt_out"%'))).scalar_one())
    stopped = int(conn.execute(select(func.count()).where(prefs.like('%"opt_out"%"all"%'))).scalar_one())
    return {
        "window_days": days,
        "messages": sum(by_status.values()),
        "by_status": by_status,
        "delivered_or_sent": ok,
        "dead": dead,
        "delivery_rate": round(ok / (ok + dead), 4) if ok + dead else None,
        "time_to_alert_ms": {"count": len(latencies), "p50": _percentile(latencies, 0.50),
                             "p99": _percentile(latencies, 0.99),
                             "max": round(latencies[-1], 1) if latencies else None},
        "sent_by_channel": by_channel,
        "dead_by_reason": dead_reasons,
        "customers": customers,
        "opted_out": opted_out,
        "stopped_all": stopped,
        "opt_out_rate": round(opted_out / customers, 4) if customers else None,
    }
