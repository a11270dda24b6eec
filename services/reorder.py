"""The reorder check (job `reorder_check`): load every SKU's positions in bulk, ask allocation.reorder what
to move or buy, and open one task per suggestion (kinds purchase_suggestion / transfer_suggestion).

Set-based: SKUs are walked in sorted ranges (`chunk_skus` at a time), each range loaded with four grouped
queries (products with their supplier's lead time, stock, demand and waiting units by SKU and customer
region, open PO lines by SKU, warehouse and date) and written in one unit of work. Decisions already
taken count: an approved suggestion still on its way is inbound (and a transfer's units committed at its
source), a fresh rejection keeps the same suggestion quiet for `[reorder] rejected_quiet_days`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select

from allocation.reorder import PURCHASE, TRANSFER, Item, Override, Params, Position, Suggestion, home_warehouse, suggest
from services.context import Context
from services.tasks import open_task
from store import tables as t
from store.allocation_io import WAITING_STATUSES as WAITING
from store.db import unit_of_work

KIND = {PURCHASE: "purchase_suggestion", TRANSFER: "transfer_suggestion"}
KINDS = tuple(KIND.values())
CAUSE = "job:reorder_check"
DEFAULT_CHUNK_SKUS = 5_000
APPROVED_HORIZON_DAYS = 400  # an approved suggestion counts as inbound until it arrives: lead times stay below


@dataclass(slots=True)
class CheckReport:
    skus: int = 0
    positions: int = 0
    suggestions: int = 0
    opened: list[int] = field(default_factory=list)  # task ids
    already_open: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"skus": self.skus, "positions": self.positions, "suggestions": self.suggestions,
                "opened": len(self.opened), "already_open": self.already_open, "seconds": round(self.seconds, 3)}


def params(ctx: Context) -> Params:
    r = ctx.settings.reorder
    return Params(today=ctx.today(), demand_window_days=r.demand_window_days, safety_days=r.safety_days,
                  default_lead_time_days=r.default_lead_time_days, transfer_days=r.transfer_days,
                  transfer_first=r.transfer_first)


def overrides(ctx: Context) -> dict[str, Override]:
    return {sku: Override(o.reorder_point, o.reorder_qty, o.supplier)
            for sku, o in ctx.settings.reorder.overrides.items()}


def check(ctx: Context, *, chunk_skus: int = DEFAULT_CHUNK_SKUS) -> CheckReport:
    """Open a suggestion task for every SKU and warehouse whose projected stock is below its reorder point."""
    report = CheckReport()
    if not ctx.settings.reorder.enabled:
        return report
    started = time.perf_counter()
    p, ov = params(ctx), overrides(ctx)
    with ctx.engine.connect() as conn:
        skus = list(conn.execute(select(t.products.c.sku).order_by(t.products.c.sku)).scalars())
        warehouses = {r.warehouse_id: r.region for r in conn.execute(
            select(t.warehouses.c.warehouse_id, t.warehouses.c.region))}
    report.skus = len(skus)
    for i in range(0, len(skus), chunk_skus):
        part = skus[i:i + chunk_skus]
        with unit_of_work(ctx.engine) as conn:
            _chunk(conn, ctx, p, ov, warehouses, part[0], part[-1], report)
    report.seconds = time.perf_counter() - started
    return report


def _chunk(conn: Connection, ctx: Context, p: Params, ov: dict[str, Override], warehouses: dict[str, str | None],
           lo: str, hi: str, report: CheckReport) -> None:
    decided = _decided(conn, ctx, p, lo, hi)
    items = load_items(conn, ctx, p, warehouses, lo, hi, decided)
    report.positions += sum(len(i.positions) for i in items)
    found = suggest(items, p, ov, skip=decided.quiet)
    report.suggestions += len(found)
    tk = t.tasks
    open_now = set(conn.execute(select(tk.c.kind, tk.c.sku).where(
        tk.c.kind.in_(KINDS), tk.c.status == "open", tk.c.sku >= lo, tk.c.sku <= hi)).tuples())
    for s in found:  # the shortest warehouse of a SKU comes first: it gets the one open task of its kind
        kind = KIND[s.kind]
        if (kind, s.sku) in open_now:
            report.already_open += 1
            continue
        open_now.add((kind, s.sku))
        task_id = open_task(conn, ctx, kind, sku=s.sku, title=title(s), detail=detail(s), cause=CAUSE)
        if task_id is not None:
            report.opened.append(task_id)


def title(s: Suggestion) -> str:
    if s.kind == TRANSFER:
        return f"Move {s.qty} x {s.sku} from {s.from_warehouse_id} to {s.warehouse_id}"
    return f"Buy {s.qty} x {s.sku} for {s.warehouse_id}" + (f" from {s.supplier_id}" if s.supplier_id else "")


def detail(s: Suggestion) -> dict[str, Any]:
    """What the task holds: what the approval emits, and the figures that led to it."""
    out: dict[str, Any] = {"qty": s.qty, "expected_at": s.expected_at.isoformat(), "projected": s.projected,
                           "reorder_point": s.reorder_point, "lead_time_days": s.lead_time_days,
                           "demand_per_day": s.demand_per_day}
    if s.kind == TRANSFER:
        out.update(from_warehouse_id=s.from_warehouse_id, to_warehouse_id=s.warehouse_id,
                   source_reorder_point=s.source_levels.get("reorder_point"),
                   source_free=s.source_levels.get("free"))
    else:
        out.update(supplier_id=s.supplier_id, warehouse_id=s.warehouse_id)
    return out


@dataclass(slots=True)
class Decided:
    """Suggestions people already decided on, as they bear on the next check."""

    inbound: dict[tuple[str, str], list[tuple[date, int]]] = field(default_factory=lambda: defaultdict(list))
    committed_out: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    quiet: set[tuple[str, str, str]] = field(default_factory=set)  # (kind, sku, warehouse) rejected lately


def _decided(conn: Connection, ctx: Context, p: Params, lo: str, hi: str) -> Decided:
    tk, now = t.tasks, ctx.now()
    quiet_since = now - timedelta(days=ctx.settings.reorder.rejected_quiet_days)
    rows = conn.execute(select(tk.c.kind, tk.c.sku, tk.c.detail, tk.c.outcome).where(
        tk.c.kind.in_(KINDS), tk.c.sku >= lo, tk.c.sku <= hi,
        or_(and_(tk.c.outcome == "approved", tk.c.closed_at >= now - timedelta(days=APPROVED_HORIZON_DAYS)),
            and_(tk.c.outcome == "rejected", tk.c.closed_at >= quiet_since)))).all()
    out = Decided()
    back = {v: k for k, v in KIND.items()}
    for r in rows:
        d = r.detail or {}
        to = d.get("to_warehouse_id") or d.get("warehouse_id")
        if r.outcome == "rejected":
            out.quiet.add((back[r.kind], r.sku, str(to)))
            continue
        arrives = date.fromisoformat(d["expected_at"]) if d.get("expected_at") else None
        if arrives is None or arrives < p.today:
            continue  # it should be here by now: the stock count or a PO says what came of it
        out.inbound[(r.sku, str(to))].append((arrives, int(d.get("qty") or 0)))
        if r.kind == KIND[TRANSFER] and d.get("from_warehouse_id"):
            out.committed_out[(r.sku, str(d["from_warehouse_id"]))] += int(d.get("qty") or 0)
    return out


def load_items(conn: Connection, ctx: Context, p: Params, warehouses: dict[str, str | None], lo: str, hi: str,
               decided: Decided | None = None) -> list[Item]:
    """The SKUs from `lo` to `hi` (inclusive) with their positions: stock, demand, waiting units, inbound."""
    decided = decided or Decided()
    pr, su, st, l, o, c = t.products, t.suppliers, t.stock, t.order_lines, t.orders, t.customers
    po, pl = t.purchase_orders, t.po_lines
    products = conn.execute(
        select(pr.c.sku, pr.c.supplier_id, pr.c.reorder_point,
               func.coalesce(pr.c.lead_time_days, su.c.lead_time_days).label("lead"))
        .outerjoin(su, su.c.supplier_id == pr.c.supplier_id).where(pr.c.sku >= lo, pr.c.sku <= hi)).all()
    stock: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    for r in conn.execute(select(st.c.sku, st.c.warehouse_id, st.c.on_hand, st.c.allocated)
                          .where(st.c.sku >= lo, st.c.sku <= hi)):
        stock[r.sku][r.warehouse_id] = (int(r.on_hand), int(r.allocated))
    since = ctx.now() - timedelta(days=p.demand_window_days)
    recent = o.c.placed_at >= since
    waiting = l.c.status.in_(WAITING)
    demand_rows = conn.execute(
        select(l.c.sku, c.c.region,
               func.sum(case((and_(recent, l.c.status != "cancelled"), l.c.qty), else_=0)).label("ordered"),
               func.sum(case((waiting, l.c.qty - l.c.qty_allocated - l.c.qty_shipped), else_=0)).label("waiting"))
        .join(o, o.c.order_id == l.c.order_id).join(c, c.c.customer_id == o.c.customer_id)
        .where(l.c.sku >= lo, l.c.sku <= hi, or_(recent, waiting))
        .group_by(l.c.sku, c.c.region)).all()
    demand: dict[str, list[tuple[str | None, int, int]]] = defaultdict(list)
    for r in demand_rows:
        demand[r.sku].append((r.region, int(r.ordered or 0), int(r.waiting or 0)))
    inbound: dict[tuple[str, str], list[tuple[date | None, int]]] = defaultdict(list)
    for r in conn.execute(
            select(pl.c.sku, po.c.warehouse_id, po.c.expected_at, func.sum(pl.c.qty - pl.c.received).label("qty"))
            .join(po, po.c.po_id == pl.c.po_id)
            .where(pl.c.sku >= lo, pl.c.sku <= hi, po.c.status == "open", pl.c.qty > pl.c.received)
            .group_by(pl.c.sku, po.c.warehouse_id, po.c.expected_at)):
        inbound[(r.sku, r.warehouse_id)].append((_day(r.expected_at), int(r.qty)))
    for key, arrivals in decided.inbound.items():
        inbound[key] += arrivals
    order = ctx.settings.allocation.warehouse_order
    every = sorted(warehouses)
    items = []
    for r in products:
        held = stock.get(r.sku, {})
        stocked = sorted(held)
        per: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # warehouse -> [ordered, waiting]
        for region, ordered, waiting_units in demand.get(r.sku, ()):
            home = home_warehouse(region, stocked, warehouses, order, every)
            if home is not None:
                per[home][0] += ordered
                per[home][1] += waiting_units
        where = sorted(set(held) | set(per))
        if not where:
            continue
        positions = tuple(
            Position(w, on_hand=held.get(w, (0, 0))[0], allocated=held.get(w, (0, 0))[1],
                     waiting=per[w][1] if w in per else 0, demand=per[w][0] if w in per else 0,
                     inbound=tuple(inbound.get((r.sku, w), ())), committed_out=decided.committed_out.get((r.sku, w), 0))
            for w in where)
        items.append(Item(r.sku, positions, supplier_id=r.supplier_id, lead_time_days=r.lead,
                          reorder_point=r.reorder_point or None))
    return items


def _day(v: Any) -> date | None:
    if v is None or isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


def open_suggestions(conn: Connection, skus: Iterable[str] | None = None) -> Sequence[Any]:
    """Open suggestion tasks (the API and tests list them)."""
    tk = t.tasks
    q = select(tk).where(tk.c.kind.in_(KINDS), tk.c.status == "open").order_by(tk.c.id)
    if skus is not None:
        q = q.where(tk.c.sku.in_(sorted(set(skus))))
    return conn.execute(q).mappings().all()
