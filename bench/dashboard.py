"""Benchmark of the operations dashboard's reads (not a test): how long services.ops_figures.snapshot() takes,
and the change check an open page runs every `[dashboard] refresh_seconds` (services.ops_queues.fingerprint).

    python bench/dashboard.py [--waiting 50000] [--repeat 5] [--db sqlite,postgresql]

Builds a fresh, migrated store per database (SQLite file; PostgreSQL database beside BACKORDER_BENCH_PG) with
--waiting waiting lines and as many resolved (allocated or shipped) ones, two lines an order, over 2,000 SKUs,
200 suppliers, 5 warehouses and 5,000 customers; 400 open POs whose ETA projection covers a quarter of the
waiting lines; lines resolved and messages sent over the last 14 days (1 per waiting line each); 300 open
tasks, 100 incidents, 500 drafts pending approval. Then times, after one warm-up call each, --repeat calls of
snapshot() (everything the page shows, one connection), of fingerprint(), and of rendering the page's figures
from a snapshot (Jinja2). Prints medians and the conditions it ran under.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, insert  # noqa: E402

from backorder.config import Settings  # noqa: E402
from bench._db import PG_ADMIN, drop_database, new_database  # noqa: E402
from bench._machine import cpu_model, package_version, pg_version  # noqa: E402
from bot.dashboard_view import figures  # noqa: E402
from services import ops_figures, ops_queues  # noqa: E402
from store import tables as t  # noqa: E402
from store.db import make_engine  # noqa: E402

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SKUS, SUPPLIERS, WAREHOUSES, CUSTOMERS, POS = 2_000, 200, 5, 5_000, 400
CHUNK = 5_000


def _chunks(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for i in range(0, len(rows), CHUNK):
            conn.execute(insert(table), rows[i:i + CHUNK])


def seed(engine: Engine, waiting: int, rng: random.Random) -> None:
    regions = [f"r{i}" for i in range(WAREHOUSES)]
    _chunks(engine, t.warehouses, [{"warehouse_id": f"W{i}", "name": f"W{i}", "region": r}
                                   for i, r in enumerate(regions)])
    _chunks(engine, t.products, [{"sku": f"SKU-{i:05d}", "name": f"Product {i}", "price": Decimal(5 + i % 90),
                                  "supplier_id": f"S{i % SUPPLIERS:03d}"} for i in range(SKUS)])
    _chunks(engine, t.customers, [{"customer_id": f"C{i:05d}", "name": f"Customer {i}",
                                   "tier": ("standard", "gold", "platinum")[i % 3], "region": regions[i % WAREHOUSES]}
                                  for i in range(CUSTOMERS)])
    total = waiting * 2
    _chunks(engine, t.orders, [{"order_id": f"O{i:07d}", "customer_id": f"C{rng.randrange(CUSTOMERS):05d}",
                                "placed_at": NOW - timedelta(hours=rng.randrange(1, 60 * 24)), "status": "open"}
                               for i in range(total // 2)])
    pos = [f"PO{i:04d}" for i in range(POS)]
    lines = []
    for i in range(total):
        qty = rng.randrange(1, 20)
        is_waiting = i % 2 == 0
        alloc = rng.randrange(0, qty) if is_waiting else qty
        lines.append({
            "order_id": f"O{i // 2:07d}", "line_id": str(i % 2 + 1), "sku": f"SKU-{rng.randrange(SKUS):05d}",
            "qty": qty, "qty_allocated": alloc, "qty_shipped": 0 if is_waiting else alloc * (i % 4 == 1),
            "unit_price": Decimal(rng.randrange(5, 95)),
            "status": ("partially_allocated" if alloc else "backordered") if is_waiting else "allocated",
            "backordered_at": NOW - timedelta(hours=rng.randrange(1, 45 * 24)),
            "eta_reason": f"po:{rng.choice(pos)}" if is_waiting and i % 8 == 0 else None,
            "eta": (NOW + timedelta(days=rng.randrange(1, 20))).date() if is_waiting and i % 8 == 0 else None,
        })
    _chunks(engine, t.order_lines, lines)
    _chunks(engine, t.purchase_orders, [{"po_id": p, "supplier_id": f"S{i % SUPPLIERS:03d}",
                                         "warehouse_id": f"W{i % WAREHOUSES}", "status": "open",
                                         "expected_at": (NOW + timedelta(days=i % 30 - 3)).date()}
                                        for i, p in enumerate(pos)])
    _chunks(engine, t.po_lines, [{"po_id": p, "sku": f"SKU-{(i * 7 + k) % SKUS:05d}", "qty": 50, "received": 0}
                                 for i, p in enumerate(pos) for k in range(3)])
    _chunks(engine, t.domain_events, [{"type": "backorder_resolved", "data": {"line_id": "1"},
                                       "created_at": NOW - timedelta(minutes=rng.randrange(14 * 24 * 60))}
                                      for _ in range(waiting)])
    statuses = ("sent", "delivered", "delivered", "delivered", "failed", "dead")
    _chunks(engine, t.outbox, [{"idempotency_key": f"k{i}", "kind": "eta_changed", "channel": "email",
                                "recipient": f"c{i}@example.com", "audience": "customer",
                                "status": statuses[i % len(statuses)],
                                "created_at": NOW - timedelta(minutes=rng.randrange(14 * 24 * 60)),
                                "occurred_at": NOW - timedelta(days=1), "sent_at": NOW - timedelta(days=1) +
                                timedelta(seconds=rng.randrange(1, 30))} for i in range(waiting)])
    _chunks(engine, t.tasks, [{"kind": "procurement_review", "sku": f"SKU-{i:05d}", "title": f"Review {i}",
                               "status": "open", "created_at": NOW - timedelta(hours=i),
                               "due_at": NOW + timedelta(hours=12 - i % 48), "owner_role": "procurement"}
                              for i in range(300)])
    _chunks(engine, t.incidents, [{"kind": "overdue_backorder", "sku": f"SKU-{i:05d}", "severity": "high",
                                   "cause": "late", "mitigation": "new ETA", "value": Decimal(100), "status": "open",
                                   "opened_at": NOW - timedelta(hours=i)} for i in range(100)])
    _chunks(engine, t.drafts, [{"idempotency_key": f"d{i}", "kind": "delay_notice", "notice_kind": "eta_changed",
                                "mode": "approve", "channel": "email", "status": "pending",
                                "created_at": NOW - timedelta(minutes=i), "updated_at": NOW - timedelta(minutes=i),
                                "expires_at": NOW + timedelta(hours=24)} for i in range(500)])


def timed(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: statement caches, templates, the database's buffers
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) * 1000


def run(kind: str, waiting: int, repeat: int, workdir: Path) -> dict[str, Any]:
    url = new_database(kind, workdir, "bench_dash")
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        seed(engine, waiting, random.Random(7))
        seeded = time.perf_counter() - started
        settings = Settings(database_url=url)
        with engine.connect() as conn:
            if kind == "postgresql":
                conn.exec_driver_sql("ANALYZE")
            snap = ops_figures.snapshot(conn, NOW, settings)
            assert snap["totals"]["lines"] == waiting, snap["totals"]
            snapshot_ms = timed(lambda: ops_figures.snapshot(conn, NOW, settings), repeat)
            fingerprint_ms = timed(lambda: ops_queues.fingerprint(conn), repeat)
        render_ms = timed(lambda: figures(snap), repeat)
        return {"db": kind, "snapshot_ms": snapshot_ms, "fingerprint_ms": fingerprint_ms, "render_ms": render_ms,
                "seed_s": seeded, "value": snap["totals"]["value"]}
    finally:
        engine.dispose()
        drop_database(url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--waiting", type=int, default=50_000, help="waiting lines (as many resolved ones are added)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.db.split(",") if k.strip()]
    print(f"# dashboard snapshot: {args.waiting:,} waiting lines + {args.waiting:,} resolved, {SKUS:,} SKUs, "
          f"{SUPPLIERS} suppliers, {WAREHOUSES} warehouses, {CUSTOMERS:,} customers, {POS} open POs, "
          f"{args.waiting:,} resolutions and messages over 14 days; median of {args.repeat} after a warm-up")
    print(f"# {cpu_model()}, Python {platform.python_version()}, SQLAlchemy {package_version('sqlalchemy')}, "
          f"psycopg {package_version('psycopg')}, SQLite {__import__('sqlite3').sqlite_version}, "
          f"PostgreSQL {pg_version(PG_ADMIN) if 'postgresql' in kinds else 'not run'}; {datetime.now(UTC):%Y-%m-%d}")
    print("| store | snapshot() | fingerprint() | render figures | seeding |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            r = run(kind, args.waiting, args.repeat, Path(tmp))
            print(f"| {r['db']} | {r['snapshot_ms']:,.0f} ms | {r['fingerprint_ms']:,.1f} ms | "
                  f"{r['render_ms']:,.1f} ms | {r['seed_s']:,.0f} s |", flush=True)


if __name__ == "__main__":
    main()
