"""Benchmark of the reorder check (not a test): prints its figures and the conditions.

    python bench/reorder.py [--db sqlite|postgresql|both] [--skus 10000] [--warehouses 3] [--lines 60000]

Per database a fresh scratch database (PostgreSQL beside BACKORDER_BENCH_PG, SQLite a temp file), filled with
bulk inserts: --warehouses warehouses in as many regions, 200 suppliers (lead times 5-30 days), --skus
products, a stock row per SKU and warehouse, 2,000 customers, --lines order lines placed over the last 40
days (15% still waiting), and open PO lines for 10% of the SKUs. Stock is drawn so that roughly a third of
the positions fall below their point and some SKUs hold surplus elsewhere (transfers). The clock is fixed at
2026-03-02 09:00 UTC. Default [reorder] settings; staff notices go to the console channel (rendered, queued).

  cold    services.reorder.check(ctx) on the fresh data: loads, decisions, one task + its notice per suggestion
  warm    check() again: every suggestion is already open, so loads and decisions only (the hourly steady state)
  loads   services.reorder.load_items over all SKUs in one range, alone
  domain  allocation.reorder.suggest over those items in memory, alone
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from bench._db import PG_ADMIN, drop_database, new_database  # noqa: E402
from bench._machine import cpu_model, package_version, pg_version  # noqa: E402

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def fill(url: str, n_skus: int, n_wh: int, n_lines: int, seed: int) -> None:
    from store import tables as t
    from store.db import make_engine

    rng = random.Random(seed)
    whs = [f"W{i}" for i in range(n_wh)]
    rows: dict[Any, list[dict[str, Any]]] = {
        t.warehouses: [{"warehouse_id": w, "name": w, "region": f"r{i}"} for i, w in enumerate(whs)],
        t.suppliers: [{"supplier_id": f"S{i:03d}", "name": f"Supplier {i}", "lead_time_days": rng.randint(5, 30)}
                      for i in range(200)],
        t.customers: [{"customer_id": f"C{i:05d}", "name": f"Customer {i}", "tier": "standard",
                       "region": f"r{i % n_wh}", "timezone": "UTC", "locale": "en", "contacts": {},
                       "preferences": {}, "tags": []} for i in range(2000)],
    }
    skus = [f"SKU-{i:06d}" for i in range(n_skus)]
    rate = {sku: rng.choice((0.2, 0.5, 1, 2, 5)) for sku in skus}  # units a day per warehouse, roughly
    rows[t.products] = [{"sku": s, "name": s, "price": Decimal("10.00"), "supplier_id": f"S{rng.randrange(200):03d}",
                         "lead_time_days": None, "reorder_point": 0, "substitutes": [], "extra": {}} for s in skus]
    # Stock around the cover a point asks for (lead + 7 days of demand): some short, some with surplus.
    rows[t.stock] = [{"sku": s, "warehouse_id": w, "on_hand": int(rate[s] * rng.uniform(0, 60)), "allocated": 0}
                     for s in skus for w in whs]
    rows[t.orders], rows[t.order_lines] = [], []
    for i in range(n_lines):
        sku = rng.choice(skus)
        cust = rng.randrange(2000)
        placed = NOW - timedelta(days=rng.uniform(0, 40))
        waiting = rng.random() < 0.15
        rows[t.orders].append({"order_id": f"O{i:07d}", "customer_id": f"C{cust:05d}", "placed_at": placed,
                               "rush": False, "ship_complete": False, "source": "bench", "status": "open"})
        qty = rng.randint(1, 6)
        rows[t.order_lines].append({"order_id": f"O{i:07d}", "line_id": "1", "sku": sku, "qty": qty,
                                    "unit_price": Decimal("10.00"), "qty_allocated": 0 if waiting else qty,
                                    "qty_shipped": 0 if waiting else qty,
                                    "status": "backordered" if waiting else "shipped"})
    rows[t.purchase_orders], rows[t.po_lines] = [], []
    for i, sku in enumerate(rng.sample(skus, n_skus // 10)):
        rows[t.purchase_orders].append({"po_id": f"PO{i:06d}", "supplier_id": "S000", "warehouse_id": rng.choice(whs),
                                        "expected_at": (NOW + timedelta(days=rng.randint(1, 40))).date(),
                                        "status": "open"})
        rows[t.po_lines].append({"po_id": f"PO{i:06d}", "sku": sku, "qty": rng.randint(5, 100), "received": 0})
    engine = make_engine(url)
    with engine.begin() as conn:
        for table in (t.warehouses, t.suppliers, t.customers, t.products, t.stock, t.orders, t.order_lines,
                      t.purchase_orders, t.po_lines):
            data = rows[table]
            for i in range(0, len(data), 5000):
                conn.execute(insert(table), data[i:i + 5000])
    engine.dispose()


def measure(url: str, chunk: int) -> dict[str, Any]:
    from allocation.reorder import suggest
    from backorder.config import load_settings
    from services import reorder
    from services.context import Context
    from store import tables as t
    from store.db import make_engine

    ctx = Context(engine=make_engine(url), settings=load_settings(database_url=url), clock=lambda: NOW)
    out: dict[str, Any] = {}
    started = time.perf_counter()
    cold = reorder.check(ctx, chunk_skus=chunk)
    out["cold_s"] = time.perf_counter() - started
    out.update(positions=cold.positions, suggestions=cold.suggestions, opened=len(cold.opened))
    started = time.perf_counter()
    warm = reorder.check(ctx, chunk_skus=chunk)
    out["warm_s"] = time.perf_counter() - started
    out["warm_opened"] = len(warm.opened)
    p = reorder.params(ctx)
    with ctx.engine.connect() as conn:
        warehouses = {r.warehouse_id: r.region for r in conn.execute(select(t.warehouses))}
        lo, hi = conn.execute(select(func.min(t.products.c.sku), func.max(t.products.c.sku))).one()
        started = time.perf_counter()
        items = reorder.load_items(conn, ctx, p, warehouses, lo, hi)
        out["loads_s"] = time.perf_counter() - started
        kinds = dict(conn.execute(select(t.tasks.c.kind, func.count()).group_by(t.tasks.c.kind)).tuples().all())
        out["notices"] = conn.execute(select(func.count()).select_from(t.outbox)).scalar_one()
    started = time.perf_counter()
    suggest(items, p, reorder.overrides(ctx))
    out["domain_s"] = time.perf_counter() - started
    out["kinds"] = kinds
    ctx.engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--skus", type=int, default=10_000)
    ap.add_argument("--warehouses", type=int, default=3)
    ap.add_argument("--lines", type=int, default=60_000)
    ap.add_argument("--chunk", type=int, default=5_000, help="SKUs per unit of work")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    print(f"reorder check: {args.skus:,} SKUs x {args.warehouses} warehouses, {args.lines:,} order lines, "
          f"chunks of {args.chunk:,} SKUs")
    print(f"started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.2f}; "
          f"{cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
          f"SQLAlchemy {package_version('sqlalchemy')}, psycopg {package_version('psycopg')}, "
          f"SQLite {__import__('sqlite3').sqlite_version}, PostgreSQL {pg_version(PG_ADMIN)}")
    print()
    print("| database | positions | suggestions (purchase / transfer) | tasks opened | cold check s | warm check s "
          "| loads alone s | domain alone s | fill s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            url = new_database(kind, Path(tmp), "bench_reorder")
            try:
                started = time.perf_counter()
                fill(url, args.skus, args.warehouses, args.lines, args.seed)
                fill_s = time.perf_counter() - started
                r = measure(url, args.chunk)
            finally:
                drop_database(url)
            split = f"{r['kinds'].get('purchase_suggestion', 0):,} / {r['kinds'].get('transfer_suggestion', 0):,}"
            assert r["warm_opened"] == 0, "a second check opened tasks"
            print(f"| {kind} | {r['positions']:,} | {r['suggestions']:,} ({split} opened) | {r['opened']:,} "
                  f"(+{r['notices']:,} notices) | {r['cold_s']:.2f} | {r['warm_s']:.2f} | {r['loads_s']:.2f} "
                  f"| {r['domain_s']:.3f} | {fill_s:.1f} |")
    print(f"\nfinished {datetime.now(UTC):%H:%M} UTC, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
