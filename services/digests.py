"""Digests: one message per customer summarising what was held for it, and the daily ops digest.

Run by the scheduler's `digests` job, every minute by default (catching up after downtime: a digest
whose time passed while no worker ran goes out at the next run). On PostgreSQL a transaction-level advisory
lock makes each run cluster-wide single; idempotency keys make a repeated run harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, update

from notifiers import preferences as prefs_mod
from notifiers import routing
from services.context import Context
from services.notifications import RowBuilder, rule
from services.notify_facts import load_customers
from services.ops_figures import waiting_units
from store import outbox
from store import tables as t
from store.allocation_io import WAITING_STATUSES as WAITING
from store.db import unit_of_work
from store.locks import xact_lock
from store.upsert import insert_ignore


@dataclass
class DigestRun:
    customer_digests: int = 0
    entries: int = 0
    ops_digests: int = 0


def run_due(ctx: Context) -> DigestRun:
    run = DigestRun()
    customer_digests(ctx, run)
    ops_digest(ctx, run)
    return run


def customer_digests(ctx: Context, run: DigestRun | None = None) -> DigestRun:
    run = run or DigestRun()
    now = ctx.now()
    cfg = ctx.settings.notify
    o = t.outbox
    with unit_of_work(ctx.engine) as conn:
        xact_lock(conn, "digests:customers")
        held = outbox.held_by_customer(conn)
        customers = load_customers(conn, held)
        builder = RowBuilder(ctx, "digest", now, now)
        rows: list[dict[str, Any]] = []
        digested: list[int] = []
        for customer_id, oldest in held.items():
            customer = customers.get(customer_id)
            if customer is None:
                continue
            p = prefs_mod.resolve(customer.preferences, default_channel=cfg.default_channel,
                                  default_digest_at=cfg.digest_at)
            tz = prefs_mod.zone(customer.timezone)
            if now < prefs_mod.next_local(oldest, tz, p.digest_at):
                continue
            entries = conn.execute(select(o.c.id, o.c.kind, o.c.facts, o.c.order_id, o.c.line_ids, o.c.occurred_at)
                                   .where(o.c.customer_id == customer_id, o.c.status == "held")
                                   .order_by(o.c.created_at, o.c.id)).all()
            if not entries or p.stopped:
                digested += [e.id for e in entries]
                continue
            data = {"customer": customer.template(), "since": _last_digest(conn, customer_id),
                    "entries": [_entry(e.kind, e.facts or {}) for e in entries]}
            last = max(e.id for e in entries)
            due = prefs_mod.after_window(now, tz, p.quiet_hours)
            common = {"customer_id": customer_id, "locale": customer.locale, "facts": data, "due_at": due,
                      "expires_at": due + timedelta(hours=cfg.max_age_hours),
                      "occurred_at": min(e.occurred_at for e in entries if e.occurred_at) if any(
                          e.occurred_at for e in entries) else now}
            plan = routing.customer_plan(p, customer.contacts, customer_id, builder.channels)
            rows += builder.routed("digest", "customer", plan, f"customer:{customer_id}", f"digest:{last}", common)
            digested += [e.id for e in entries]
            run.customer_digests += 1
            run.entries += len(entries)
        if rows:
            insert_ignore(conn, o, rows, ["idempotency_key"])
        if digested:
            conn.execute(update(o).where(o.c.id.in_(digested), o.c.status == "held")
                         .values(status="digested", due_at=None, updated_at=now))
    return run


def _entry(kind: str, facts: dict[str, Any]) -> dict[str, Any]:
    entry = {k: v for k, v in facts.items() if k != "customer"}
    entry.setdefault("order", None)
    entry.setdefault("items", [])
    entry.setdefault("product", None)
    entry["kind"] = kind
    return entry


def _last_digest(conn: Connection, customer_id: str) -> str | None:
    o = t.outbox
    at = conn.execute(select(func.max(o.c.created_at)).where(o.c.customer_id == customer_id,
                                                             o.c.kind == "digest")).scalar_one_or_none()
    return at.isoformat() if isinstance(at, datetime) else None


def ops_digest(ctx: Context, run: DigestRun | None = None) -> DigestRun:
    """Today's ops digest, once, from ops_digest_at (local to ops_timezone) on."""
    run = run or DigestRun()
    cfg = ctx.settings.notify
    if not rule(cfg, "ops_digest").enabled:
        return run
    now = ctx.now()
    tz = prefs_mod.zone(cfg.ops_timezone)
    day_start = prefs_mod.local_day_start(now, tz)
    at = prefs_mod.hhmm(cfg.ops_digest_at)
    if now < day_start + timedelta(hours=at.hour, minutes=at.minute):
        return run
    today = now.astimezone(tz).date().isoformat()
    with unit_of_work(ctx.engine) as conn:
        xact_lock(conn, "digests:ops")
        o = t.outbox
        if conn.execute(select(o.c.id).where(o.c.kind == "ops_digest", o.c.cause == f"ops-digest:{today}")
                        .limit(1)).first():
            return run
        builder = RowBuilder(ctx, f"ops-digest:{today}", now, now)
        rows = builder.for_staff("ops_digest", ops_figures(conn, now, day_start, today), scope=today)
        insert_ignore(conn, o, rows, ["idempotency_key"])
        run.ops_digests += 1 if rows else 0
    return run


def ops_figures(conn: Connection, now: datetime, day_start: datetime, today: str) -> dict[str, Any]:
    l, p = t.order_lines, t.products
    waiting = waiting_units()  # qty_allocated counts shipped units too
    open_q = l.c.status.in_(WAITING)
    lines, units, value, oldest = conn.execute(select(
        func.count(), func.coalesce(func.sum(waiting), 0), func.coalesce(func.sum(waiting * l.c.unit_price), 0),
        func.min(l.c.backordered_at)).where(open_q)).one()
    opened = conn.execute(select(func.count()).where(open_q, l.c.backordered_at >= day_start)).scalar_one()
    d = t.domain_events
    resolved = conn.execute(select(func.count()).where(d.c.type == "backorder_resolved",
                                                       d.c.created_at >= day_start)).scalar_one()
    top = conn.execute(
        select(l.c.sku, p.c.name, func.count().label("lines"), func.sum(waiting).label("units"),
               func.sum(waiting * l.c.unit_price).label("value"))
        .join(p, p.c.sku == l.c.sku).where(open_q).group_by(l.c.sku, p.c.name)
        .order_by(func.sum(waiting * l.c.unit_price).desc(), l.c.sku).limit(5)).all()
    o = t.outbox
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return {
        "date": today, "open_lines": int(lines), "open_units": int(units), "open_value": round(float(value), 2),
        "opened_today": int(opened), "resolved_today": int(resolved),
        "oldest_days": (now - oldest).days if oldest is not None else 0,
        "top_skus": [{"sku": r.sku, "name": r.name, "lines": int(r.lines), "units": int(r.units),
                      "value": round(float(r.value or 0), 2)} for r in top],
        "tasks_open": int(conn.execute(select(func.count()).where(t.tasks.c.status == "open")).scalar_one()),
        "incidents_open": int(conn.execute(select(func.count()).where(t.incidents.c.status == "open"))
                              .scalar_one()),
        "dead_letters": int(conn.execute(select(func.count()).where(t.dead_letters.c.status == "parked"))
                            .scalar_one()),
        "notifications_dead": int(conn.execute(select(func.count()).where(
            o.c.status == "dead", o.c.updated_at >= now - timedelta(days=1))).scalar_one()),
    }

