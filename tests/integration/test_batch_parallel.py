"""The batch run with chunks in flight at once decides what one in-memory walk over every line decides."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from allocation.engine import allocate
from allocation.eta import project_etas
from services.batch import allocate_all
from services.context import Context
from store import allocation_io as io
from store import tables as t
from store.pass_reads import load_eta_sources

WAREHOUSES = (("W1", "north"), ("W2", "south"), ("W3", "east"))


def seed(ctx: Context, n_skus: int = 40, n_orders: int = 220) -> None:
    rnd = random.Random(7)
    now = ctx.now()
    skus = [f"S{i:03d}" for i in range(n_skus)]
    with ctx.engine.begin() as conn:
        conn.execute(insert(t.warehouses), [{"warehouse_id": w, "name": w, "region": r, "updated_at": now}
                                            for w, r in WAREHOUSES])
        conn.execute(insert(t.suppliers), [{"supplier_id": "SUP", "name": "Sup", "lead_time_days": 9,
                                            "updated_at": now}])
        conn.execute(insert(t.products), [
            {"sku": s, "name": s, "price": 10, "supplier_id": "SUP" if i % 3 else None,
             "lead_time_days": 5 if i % 4 == 0 else None, "reorder_point": 0, "substitutes": [], "extra": {},
             "updated_at": now} for i, s in enumerate(skus)])
        conn.execute(insert(t.customers), [
            {"customer_id": f"C{i}", "name": f"C{i}", "tier": ("standard", "gold", "platinum")[i % 3],
             "region": WAREHOUSES[i % 3][1], "timezone": "UTC", "locale": "en", "contacts": {}, "preferences": {}}
            for i in range(30)])
        conn.execute(insert(t.stock), [{"sku": s, "warehouse_id": w, "on_hand": rnd.choice((0, 0, 1, 3, 6)),
                                        "allocated": 0} for s in skus for w, _ in WAREHOUSES])
        orders: list[dict[str, Any]] = []
        lines: list[dict[str, Any]] = []
        for o in range(n_orders):
            placed = now - timedelta(minutes=rnd.randrange(20_000))
            k = rnd.choice((1, 1, 2, 3))
            orders.append({"order_id": f"O{o:04d}", "customer_id": f"C{rnd.randrange(30)}", "placed_at": placed,
                           "promised_date": placed.date() + timedelta(days=4), "rush": rnd.random() < 0.1,
                           "ship_complete": k > 1 and rnd.random() < 0.05, "channel": "web", "source": "test",
                           "status": "open"})
            for j, sku in enumerate(rnd.sample(skus, k), 1):
                lines.append({"order_id": f"O{o:04d}", "line_id": str(j), "sku": sku, "qty": rnd.randint(1, 4),
                              "unit_price": 10, "qty_allocated": 0, "qty_shipped": 0, "status": "backordered"})
        conn.execute(insert(t.orders), orders)
        conn.execute(insert(t.order_lines), lines)
        conn.execute(insert(t.purchase_orders), [
            {"po_id": f"PO{p}", "supplier_id": "SUP", "warehouse_id": WAREHOUSES[p % 3][0],
             "expected_at": ctx.today() + timedelta(days=rnd.randint(-2, 30)), "status": "open", "updated_at": now}
            for p in range(12)])
        conn.execute(insert(t.po_lines), [{"po_id": f"PO{p}", "sku": sku, "qty": rnd.randint(2, 15), "received": 0}
                                          for p in range(12) for sku in rnd.sample(skus, 3)])


def expected(ctx: Context) -> tuple[dict[int, tuple[Any, ...]], dict[tuple[str, str], int]]:
    """Every line walked at once, in memory, by the same domain functions."""
    with ctx.engine.connect() as conn:
        skus = sorted(set(conn.execute(select(t.order_lines.c.sku)).scalars()))
        loaded = io.load_open(conn, skus)
        policy = ctx.settings.allocation_policy(loaded.regions)
        allocate(loaded.lines, loaded.stocks, policy)
        inbound, lead_times = load_eta_sources(conn, skus)
        project_etas(loaded.lines, inbound, policy, ctx.today(), lead_times)
    lines = {io.line_pk(ln.line_id): (ln.status, ln.qty_allocated, ln.eta, ln.eta_reason) for ln in loaded.lines}
    return lines, {(s.sku, s.warehouse_id): s.allocated for s in loaded.stocks}


def stored(ctx: Context) -> tuple[dict[int, tuple[Any, ...]], dict[tuple[str, str], int]]:
    l, s = t.order_lines, t.stock
    with ctx.engine.connect() as conn:
        lines = {r.id: (r.status, r.qty_allocated, _date(r.eta), r.eta_reason)
                 for r in conn.execute(select(l.c.id, l.c.status, l.c.qty_allocated, l.c.eta, l.c.eta_reason))}
        stock = {(r.sku, r.warehouse_id): r.allocated for r in conn.execute(select(s))}
    return lines, stock


def _date(v: Any) -> date | None:
    return date.fromisoformat(v) if isinstance(v, str) else v


def test_parallel_chunks_decide_what_one_walk_decides(ctx: Context) -> None:
    seed(ctx)
    want_lines, want_stock = expected(ctx)
    report = allocate_all(ctx, chunk_skus=3, workers=2, notify=False)
    got_lines, got_stock = stored(ctx)
    allocated = sum(1 for st, *_ in want_lines.values() if st != "backordered")
    print(f"{ctx.engine.dialect.name}: {report.lines_seen} lines, {report.chunks} chunks, {allocated} got stock, "
          f"{report.events_written} events, {report.audit_written} audit rows")
    assert report.chunks >= 4 and allocated > 20  # many chunks, and real contention for stock
    assert got_lines == want_lines
    assert got_stock == want_stock
    with ctx.engine.connect() as conn:
        audited = conn.execute(select(t.audit_log.c.entity_id).where(t.audit_log.c.entity == "order_line")).all()
        events = conn.execute(select(t.domain_events.c.id)).all()
    assert len(audited) == report.audit_written and len(events) == report.events_written
    again = allocate_all(ctx, chunk_skus=3, workers=2, notify=False)
    assert (again.lines_changed, again.events_written) == (0, 0)
    assert datetime.now(UTC) > ctx.now()  # the fixed clock is in the past: ETAs come from it, not the wall clock
