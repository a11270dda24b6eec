"""Benchmark of the weekly backorder report (not a test): figures and rendering over a generated history.

    python bench/report.py --db sqlite|postgresql|both --lines 100000 --skus 2000 --weeks 8

Generates `--lines` order lines over `--weeks` weeks (about a third of them backordered, most of those
resolved and shipped, some split over two warehouses or cancelled), with their domain events, allocation
rows, outbox messages, staff audit rows, purchase orders and their inbox events, written with bulk inserts.
Then times services.weekly_report.build (every figure, set-based SQL) for the last week, median of
--runs, and each format's rendering once (md, csv, html with its charts, pdf).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, insert

from bench._db import PG_ADMIN, drop_database, new_database
from bench._machine import cpu_model, package_version, pg_version

END = datetime(2026, 3, 2, tzinfo=UTC)  # Monday: the report covers the week before
CHUNK = 5000


def _chunks(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for i in range(0, len(rows), CHUNK):
            conn.execute(insert(table), rows[i:i + CHUNK])


def generate(engine: Engine, lines: int, skus: int, weeks: int, seed: int = 7) -> dict[str, int]:
    from store import tables as t

    rnd = random.Random(seed)
    start = END - timedelta(weeks=weeks)
    span = (END - start).total_seconds()
    _chunks(engine, t.warehouses, [{"warehouse_id": f"W{i}", "name": f"W{i}", "region": "r"} for i in range(3)])
    _chunks(engine, t.suppliers, [{"supplier_id": f"S{i}", "name": f"Supplier {i}", "lead_time_days": 10}
                                  for i in range(40)])
    _chunks(engine, t.products, [{"sku": f"K{i:05d}", "name": f"Item {i}", "price": 10 + i % 90,
                                  "supplier_id": f"S{i % 40}", "substitutes": [], "extra": {}} for i in range(skus)])
    _chunks(engine, t.customers, [{"customer_id": f"C{i}", "name": f"Customer {i}", "tier": "standard",
                                   "contacts": {}, "preferences": {}, "tags": []} for i in range(2000)])
    orders, order_lines, events, allocs, outbox, audit = [], [], [], [], [], []
    n_orders = lines // 2
    for o in range(n_orders):
        placed = start + timedelta(seconds=rnd.random() * span)
        orders.append({"order_id": f"O{o}", "customer_id": f"C{rnd.randrange(2000)}", "placed_at": placed,
                       "promised_date": (placed + timedelta(days=rnd.randint(2, 10))).date(), "status": "open",
                       "source": "bench"})
    pk = 0
    for o in orders:
        for ln in range(2):
            pk += 1
            placed = o["placed_at"]
            sku = f"K{rnd.randrange(skus):05d}"
            short = rnd.random() < 0.35
            row = {"id": pk, "order_id": o["order_id"], "line_id": str(ln + 1), "sku": sku, "qty": 4,
                   "unit_price": 20, "qty_allocated": 4, "qty_shipped": 0, "status": "allocated",
                   "backordered_at": placed if short else None}
            resolved = placed + timedelta(hours=rnd.uniform(6, 400)) if short else placed
            if short and (resolved > END or rnd.random() < 0.15):
                if rnd.random() < 0.1 and resolved < END:
                    row.update(status="cancelled", qty_allocated=0)
                    events.append({"type": "line_cancelled", "data": {"line_pk": pk}, "created_at": resolved})
                else:
                    row.update(status="backordered", qty_allocated=0)
                order_lines.append(row)
                continue
            if short:
                events.append({"type": "backorder_resolved", "data": {"line_pk": pk}, "created_at": resolved})
            shipped = resolved + timedelta(hours=rnd.uniform(4, 72))
            split = rnd.random() < 0.1
            if shipped < END:
                row.update(status="shipped", qty_shipped=4)
                events.append({"type": "line_shipped", "data": {"line_pk": pk}, "created_at": shipped})
            for w in (["W0", "W1"] if split else [f"W{rnd.randrange(3)}"]):
                allocs.append({"line_pk": pk, "sku": sku, "warehouse_id": w, "qty": 2 if split else 4,
                               "status": "shipped" if shipped < END else "allocated", "created_at": resolved})
            order_lines.append(row)
            if short:
                outbox.append({"idempotency_key": f"m{pk}", "kind": "backorder_created", "channel": "email",
                               "recipient": "x@example.com", "audience": "customer", "order_id": o["order_id"],
                               "sku": sku, "status": "sent", "created_at": placed, "body": "", "line_ids": [],
                               "payload": {}, "facts": {}, "fallback": []})
                if rnd.random() < 0.1:
                    audit.append({"at": resolved, "actor": "chat:ann", "action": "note", "entity": "order_line",
                                  "entity_id": f"{o['order_id']}/{ln + 1}"})
    for e in events:
        e["cause"] = "bench"
    pos, po_lines, inbox = [], [], []
    for i in range(skus // 4):
        at = start + timedelta(seconds=rnd.random() * span)
        expected = (at + timedelta(days=10)).date()
        pos.append({"po_id": f"P{i}", "supplier_id": f"S{i % 40}", "warehouse_id": "W0", "expected_at": expected,
                    "status": "open", "updated_at": at})
        po_lines.append({"po_id": f"P{i}", "sku": f"K{(i * 4) % skus:05d}", "qty": 50, "received": 0})
        inbox.append({"source": "bench", "event_id": f"po{i}", "type": "po.updated", "occurred_at": at,
                      "received_at": at, "payload": {"data": {"po_id": f"P{i}"}}, "status": "applied"})
        arrived = at + timedelta(days=rnd.uniform(7, 16))
        if arrived < END:
            inbox.append({"source": "bench", "event_id": f"r{i}", "type": "inventory.received",
                          "occurred_at": arrived, "received_at": arrived, "status": "applied",
                          "payload": {"data": {"po_id": f"P{i}", "sku": f"K{(i * 4) % skus:05d}"}}})
    for table, rows in ((t.orders, orders), (t.order_lines, order_lines), (t.domain_events, events),
                        (t.allocations, allocs), (t.outbox, outbox), (t.audit_log, audit),
                        (t.purchase_orders, pos), (t.po_lines, po_lines), (t.inbox, inbox)):
        _chunks(engine, table, rows)
    return {"orders": len(orders), "lines": len(order_lines), "domain_events": len(events), "outbox": len(outbox),
            "pos": len(pos)}


def run(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from backorder.config import load_settings
    from reporting import formats
    from services import weekly_report
    from services.context import Context
    from store.db import make_engine

    url = new_database(kind, workdir, "bench_report")
    try:
        engine = make_engine(url)
        t0 = time.perf_counter()
        counts = generate(engine, args.lines, args.skus, args.weeks)
        gen_s = time.perf_counter() - t0
        if kind == "postgresql":
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
        ctx = Context(engine=engine, settings=load_settings(database_url=url, report={"weeks": args.weeks}),
                      clock=lambda: END + timedelta(hours=7))
        times = []
        figures: dict[str, Any] = {}
        for _ in range(args.runs):
            t0 = time.perf_counter()
            figures = weekly_report.build(ctx)
            times.append(time.perf_counter() - t0)
        render = {}
        for fmt in formats.FORMATS:
            t0 = time.perf_counter()
            size = len(formats.render_format(figures, fmt))
            render[fmt] = (time.perf_counter() - t0, size)
        engine.dispose()
        return {"db": kind, "counts": counts, "generate_s": gen_s, "build_s": statistics.median(times),
                "build_runs": times, "render": render, "week": figures["week"], "this_week": figures["this_week"],
                "revenue_at_risk": figures["revenue_at_risk"]}
    finally:
        drop_database(url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--skus", type=int, default=2000)
    ap.add_argument("--weeks", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(f"# weekly report benchmark: {args.lines:,} lines, {args.skus:,} SKUs, {args.weeks} weeks, "
          f"median of {args.runs} builds")
    print(f"# {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"SQLAlchemy {package_version('sqlalchemy')}, matplotlib {package_version('matplotlib')}, "
          f"PostgreSQL {pg_version(PG_ADMIN) if 'postgresql' in kinds else '-'}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            r = run(kind, args, Path(tmp))
            w = r["this_week"]
            print(f"\n{kind}: generated {r['counts']} in {r['generate_s']:.1f} s")
            print(f"  build (all figures, {r['week']}): {r['build_s'] * 1000:.0f} ms median "
                  f"(runs: {', '.join(f'{x * 1000:.0f}' for x in r['build_runs'])} ms)")
            print(f"  week: opened {w['opened']}, resolved {w['resolved']}, fill rate {w['fill_rate']}, "
                  f"revenue at risk {r['revenue_at_risk']:,.2f}")
            for fmt, (secs, size) in r["render"].items():
                print(f"  render {fmt:4}: {secs * 1000:6.0f} ms, {size / 1024:7.1f} KiB")


if __name__ == "__main__":
    main()
