"""Benchmark of event intake (not a test): how fast events are stored, and applied one by one.

    python bench/intake.py --db sqlite|postgresql|both --orders 5000 --skus 100

On a fresh database (schema by Alembic), master data first, then:
  store    services.inbox.store_events of --orders order.placed events in one request-sized batch
           (validation excluded: that is intake.parse_events, measured beside it)
  apply    services.inbox.drain of those events: one unit of work each (lock, load the SKU's waiting
           lines, allocate, project ETAs, write lines, audit rows and domain events, commit)
  receipt  then one inventory.received per SKU (each allocating to that SKU's waiting lines)
  http     POST /events with 1,000 more orders through the FastAPI app (wait=true), end to end
Prints a table and the conditions it ran under.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _db import PG_ADMIN  # noqa: E402  (bench/ is the script's directory)
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

AT = "2026-03-01T10:00:00+00:00"


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": AT, "source": "bench", "data": data}


def order(i: int, skus: int) -> dict[str, Any]:
    return ev(f"o{i}", "order.placed", {
        "order_id": f"O{i}", "customer_id": f"C{i % 50}", "placed_at": AT, "promised_date": "2026-03-05",
        "lines": [{"line_id": "1", "sku": f"S{i % skus}", "qty": 2, "unit_price": "3.00"},
                  {"line_id": "2", "sku": f"S{(i * 7 + 3) % skus}", "qty": 1, "unit_price": "5.00"}],
    })


def run(url: str, n_orders: int, n_skus: int) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from backorder.config import load_settings
    from bot.api import create_app
    from intake.envelope import parse_events
    from services.context import Context
    from services.inbox import drain, store_events
    from store.db import upgrade

    upgrade(url)
    ctx = Context.from_settings(load_settings(database_url=url))
    seed = [ev("w", "warehouse.upserted", {"warehouse_id": "W1", "name": "W1", "region": "north"}),
            ev("s", "supplier.upserted", {"supplier_id": "SUP", "name": "Sup", "lead_time_days": 10})]
    seed += [ev(f"c{k}", "customer.upserted", {"customer_id": f"C{k}", "name": f"C{k}", "region": "north",
                                               "tier": ("standard", "gold", "platinum")[k % 3]}) for k in range(50)]
    seed += [ev(f"p{k}", "product.upserted", {"sku": f"S{k}", "name": f"P{k}", "price": "3.00",
                                              "supplier_id": "SUP"}) for k in range(n_skus)]
    _, ids = store_events(ctx, seed)
    drain(ctx, ids)
    orders = [order(i, n_skus) for i in range(n_orders)]
    t0 = time.perf_counter()
    envelopes = [e.to_dict() for e in parse_events(orders)]
    t1 = time.perf_counter()
    _, ids = store_events(ctx, envelopes)
    t2 = time.perf_counter()
    drain(ctx, ids)
    t3 = time.perf_counter()
    receipts = [ev(f"r{k}", "inventory.received", {"sku": f"S{k}", "warehouse_id": "W1", "qty": 25})
                for k in range(n_skus)]
    _, ids = store_events(ctx, receipts)
    t4 = time.perf_counter()
    drain(ctx, ids)
    t5 = time.perf_counter()
    client = TestClient(create_app(ctx, background_applier=False))
    more = [order(i, n_skus) for i in range(n_orders, n_orders + 1000)]
    t6 = time.perf_counter()
    response = client.post("/events", json=more)
    t7 = time.perf_counter()
    assert response.status_code == 200 and response.json()["accepted"] == 1000, response.text
    ctx.engine.dispose()
    return {
        "validate_ev_s": n_orders / (t1 - t0),
        "store_ev_s": n_orders / (t2 - t1),
        "apply_orders_ev_s": n_orders / (t3 - t2),
        "apply_ms_per_order": (t3 - t2) * 1000 / n_orders,
        "apply_receipts_ev_s": n_skus / (t5 - t4),
        "apply_ms_per_receipt": (t5 - t4) * 1000 / n_skus,
        "http_1000_orders_s": t7 - t6,
    }


def pg_database() -> tuple[str, Any]:
    admin = make_url(PG_ADMIN)
    name = f"bench_intake_{uuid.uuid4().hex[:8]}"
    eng = create_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        version = conn.execute(text("SHOW server_version")).scalar_one()

    def drop() -> None:
        with eng.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()

    return admin.set(database=name).render_as_string(hide_password=False), (drop, version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--skus", type=int, default=100)
    args = parser.parse_args()
    import sqlite3

    print(f"conditions: {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, {args.orders} orders "
          f"(2 lines each) over {args.skus} SKUs, 1 warehouse")
    rows: list[tuple[str, dict[str, float]]] = []
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(("sqlite", run(f"sqlite:///{tmp}/bench.db", args.orders, args.skus)))
    if args.db in ("postgresql", "both"):
        url, (drop, version) = pg_database()
        try:
            print(f"PostgreSQL {version}")
            rows.append(("postgresql", run(url, args.orders, args.skus)))
        finally:
            drop()
    keys = list(rows[0][1])
    print(f"{'':24}" + "".join(f"{db:>14}" for db, _ in rows))
    for key in keys:
        print(f"{key:24}" + "".join(f"{r[key]:>14,.1f}" for _, r in rows))


if __name__ == "__main__":
    main()
