"""Benchmark of event intake (not a test): how fast events are stored, and applied one by one.

    python bench/intake.py --db sqlite|postgresql|both --orders 5000 --skus 100

On a fresh database (schema by Alembic), master data first, then:
  store    services.inbox.store_events of --orders order.placed events in one request-sized batch
           (validation excluded: that is intake.parse_events, measured beside it)
  apply    services.inbox.drain of those events: one unit of work each (lock, load the SKU's waiting
           lines, allocate, project ETAs, write lines, audit rows and domain events, commit)
  receipt  then one inventory.received per SKU (each allocating to that SKU's waiting lines)
  http     POST /events with 1,000 more orders through the FastAPI app (wait=true), end to end
Prints a table and the conditions it ran under. Beside wall time, CPU time per event: this process's
(time.process_time) and, on PostgreSQL, the server backends' serving it (/proc/PID/stat of the backends of
the scratch database), and SQL statements per event; CPU is what bounds events/s when the API, workers and
the database share the cores, and it is far less noisy than wall time on a shared machine.
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
from sqlalchemy import Engine, create_engine, event, text  # noqa: E402
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


class Meter:
    """CPU seconds of this process and of the database backends serving it, and statements executed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements = 0
        self._own = False  # the meter's own query is not the workload's
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *_args: Any) -> None:
        self.statements += not self._own

    def backend_cpu(self) -> float:
        """Summed user+system CPU of the PostgreSQL backends connected to our database (0 on SQLite)."""
        if self.engine.dialect.name != "postgresql":
            return 0.0
        self._own = True
        try:
            with self.engine.connect() as conn:
                pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))
                pids = pids.scalars().all()
        finally:
            self._own = False
        ticks = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # another host, or the backend is gone
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def mark(self) -> tuple[float, float, float, int]:
        return time.perf_counter(), time.process_time(), self.backend_cpu(), self.statements


def per_event(before: tuple[float, float, float, int], after: tuple[float, float, float, int], n: int,
              name: str) -> dict[str, float]:
    """ms of wall, client CPU and server CPU per event, statements per event."""
    return {
        f"{name}_ev_s": n / (after[0] - before[0]),
        f"{name}_wall_ms": (after[0] - before[0]) * 1000 / n,
        f"{name}_cpu_ms": (after[1] - before[1]) * 1000 / n,
        f"{name}_db_cpu_ms": (after[2] - before[2]) * 1000 / n,
        f"{name}_statements": (after[3] - before[3]) / n,
    }


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
    meter = Meter(ctx.engine)
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
    m2 = meter.mark()
    drain(ctx, ids)
    m3 = meter.mark()
    receipts = [ev(f"r{k}", "inventory.received", {"sku": f"S{k}", "warehouse_id": "W1", "qty": 25})
                for k in range(n_skus)]
    _, ids = store_events(ctx, receipts)
    m4 = meter.mark()
    drain(ctx, ids)
    m5 = meter.mark()
    client = TestClient(create_app(ctx, background_applier=False))
    more = [order(i, n_skus) for i in range(n_orders, n_orders + 1000)]
    m6 = meter.mark()
    response = client.post("/events", json=more)
    m7 = meter.mark()
    assert response.status_code == 200 and response.json()["accepted"] == 1000, response.text
    with ctx.engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM inbox GROUP BY status")).tuples().all())
    assert set(statuses) == {"applied"}, statuses
    ctx.engine.dispose()
    return {
        "validate_ev_s": n_orders / (t1 - t0),
        "store_ev_s": n_orders / (t2 - t1),
        **per_event(m2, m3, n_orders, "order"),
        **per_event(m4, m5, n_skus, "receipt"),
        **per_event(m6, m7, 1000, "http_order"),
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
          f"(2 lines each) over {args.skus} SKUs, 1 warehouse, load average {_load()}")
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
        print(f"{key:24}" + "".join(f"{r[key]:>14,.2f}" for _, r in rows))
    print(f"load average at the end {_load()}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
