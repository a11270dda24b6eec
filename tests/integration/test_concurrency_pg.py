"""Four OS processes store and apply disjoint batches for the SAME SKUs on one PostgreSQL store.

PostgreSQL only (the coordination point in production); fails, never skips, when unreachable.
At the end: the invariants hold, every stock's allocated equals its active allocation rows,
and every inbox event was applied, ignored or parked for a missing record (none pending,
none parked by an error such as a deadlock).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from backorder.config import load_settings
from services.context import Context
from services.inbox import drain, store_events
from store import tables as t
from store.db import make_engine

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
WORKERS = 4
EVENTS_PER_WORKER = 90
CHUNK = 6
SKUS = ("A", "B", "C")
WAREHOUSES = ("W1", "W2")
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

WORKER = r"""
import json, sys, time
from datetime import UTC, datetime
from backorder.config import load_settings
from services.context import Context
from services.inbox import drain, store_events
from store.db import make_engine

url, path, start_at, chunk = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
events = json.loads(open(path).read())
ctx = Context(engine=make_engine(url), settings=load_settings(database_url=url),
              clock=lambda: datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
time.sleep(max(0.0, start_at - time.time()))
for i in range(0, len(events), chunk):
    outcomes, ids = store_events(ctx, events[i:i + chunk])
    assert outcomes.count("accepted") == len(ids)
    drain(ctx, ids, timeout_s=60)
ctx.engine.dispose()
"""


def ts(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def ev(event_id: str, type_: str, data: dict[str, Any], minutes: float = 0) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": ts(minutes), "source": "conc", "data": data}


def order_data(rng: random.Random, order_id: str, minutes: float) -> dict[str, Any]:
    skus = rng.sample(SKUS, rng.randint(1, 3))
    return {"order_id": order_id, "customer_id": rng.choice(["C1", "C2", "C3", "C4"]),
            "placed_at": ts(minutes), "ship_complete": rng.random() < 0.2, "rush": rng.random() < 0.2,
            "lines": [{"line_id": f"L{i}", "sku": s, "qty": rng.randint(1, 3), "unit_price": 10}
                      for i, s in enumerate(skus)]}


def seed_events(rng: random.Random, n_orders: int) -> list[dict[str, Any]]:
    events = [
        ev("w1", "warehouse.upserted", {"warehouse_id": "W1", "name": "W1", "region": "north"}),
        ev("w2", "warehouse.upserted", {"warehouse_id": "W2", "name": "W2", "region": "south"}),
        *(ev(f"p-{s}", "product.upserted", {"sku": s, "name": s, "price": 10, "lead_time_days": 5}) for s in SKUS),
        *(ev(f"c-{c}", "customer.upserted", {"customer_id": c, "name": c, "region": r, "tier": tier})
          for c, r, tier in [("C1", "north", "standard"), ("C2", "south", "gold"), ("C3", "north", "platinum"),
                             ("C4", "south", "standard")]),
        *(ev(f"a0-{s}-{w}", "inventory.adjusted", {"sku": s, "warehouse_id": w, "on_hand": 4})
          for s in SKUS for w in WAREHOUSES),
    ]
    events += [ev(f"seed-o{j}", "order.placed", order_data(rng, f"O{j}", j)) for j in range(n_orders)]
    return events


def worker_events(rng: random.Random, k: int, n_seed_orders: int) -> list[dict[str, Any]]:
    """Worker k's batch: only its own event ids, new order ids and seeded orders (j % WORKERS == k)."""
    mine = [j for j in range(n_seed_orders) if j % WORKERS == k]
    rng.shuffle(mine)
    out: list[dict[str, Any]] = []
    for n in range(EVENTS_PER_WORKER):
        eid = f"w{k}-{n}"
        minutes = 100 + n + k / 10  # counts from different workers interleave in time
        kind = rng.choices(["receive", "adjust", "order", "cancel", "ship"], [3, 3, 3, 1, 1])[0]
        sku, wh = rng.choice(SKUS), rng.choice(WAREHOUSES)
        if kind == "receive":
            out.append(ev(eid, "inventory.received", {"sku": sku, "warehouse_id": wh, "qty": rng.randint(1, 4)}))
        elif kind == "adjust":
            out.append(ev(eid, "inventory.adjusted", {"sku": sku, "warehouse_id": wh, "on_hand": rng.randint(0, 8)},
                          minutes))
        elif kind == "order" or not mine:
            out.append(ev(eid, "order.placed", order_data(rng, f"N{k}-{n}", minutes)))
        elif kind == "cancel":
            out.append(ev(eid, "order.cancelled", {"order_id": f"O{mine.pop()}"}))
        else:
            out.append(ev(eid, "shipment.updated", {"order_id": f"O{mine.pop()}"}))
    return out




def check_invariants(conn: Connection) -> None:
    s, l, a = t.stock, t.order_lines, t.allocations
    bad = conn.execute(select(s.c.sku, s.c.warehouse_id, s.c.on_hand, s.c.allocated)
                       .where((s.c.allocated < 0) | (s.c.allocated > s.c.on_hand))).all()
    assert not bad, f"stock out of bounds: {bad}"
    bad = conn.execute(select(l.c.order_id, l.c.line_id).where(
        (l.c.qty_shipped < 0) | (l.c.qty_shipped > l.c.qty_allocated) | (l.c.qty_allocated > l.c.qty))).all()
    assert not bad, f"lines out of bounds: {bad}"
    active = {(r.sku, r.warehouse_id): int(r.q) for r in conn.execute(
        select(a.c.sku, a.c.warehouse_id, func.sum(a.c.qty).label("q")).where(a.c.status == "allocated")
        .group_by(a.c.sku, a.c.warehouse_id))}
    stock = {(r.sku, r.warehouse_id): r.allocated for r in conn.execute(select(s.c.sku, s.c.warehouse_id,
                                                                                 s.c.allocated))}
    assert {k: v for k, v in active.items() if v} == {k: v for k, v in stock.items() if v}
    per_line = {r.line_pk: int(r.q) for r in conn.execute(
        select(a.c.line_pk, func.sum(a.c.qty).label("q")).where(a.c.status == "allocated").group_by(a.c.line_pk))}
    for r in conn.execute(select(l.c.id, l.c.order_id, l.c.line_id, l.c.qty_allocated, l.c.qty_shipped)):
        assert per_line.get(r.id, 0) == r.qty_allocated - r.qty_shipped, r


def test_four_processes_apply_events_for_the_same_skus(pg_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("BACKORDER_") and k != "BACKORDER_TEST_DATABASE_URL"]:
        monkeypatch.delenv(key)
    rng = random.Random(20260302)
    n_seed_orders = 60
    ctx = Context(engine=make_engine(pg_url), settings=load_settings(database_url=pg_url),
                  clock=lambda: datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    try:
        store_events(ctx, seed_events(rng, n_seed_orders))
        drain(ctx)
        with ctx.engine.connect() as conn:
            check_invariants(conn)
            waiting = conn.execute(select(func.count()).select_from(t.order_lines)
                                   .where(t.order_lines.c.status != "allocated")).scalar_one()
        assert waiting > 20, "the seed should leave many lines waiting"

        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKORDER_")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        start_at = time.time() + 2.0
        procs = []
        for k in range(WORKERS):
            path = tmp_path / f"worker{k}.json"
            path.write_text(json.dumps(worker_events(rng, k, n_seed_orders)))
            procs.append(subprocess.Popen(
                [sys.executable, "-c", WORKER, pg_url, str(path), str(start_at), str(CHUNK)],
                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        failures = []
        deadline = time.monotonic() + 40
        for k, p in enumerate(procs):
            try:
                _out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                _out, err = p.communicate()
                failures.append(f"worker {k} timed out\n{err[-3000:]}")
                continue
            if p.returncode != 0:
                failures.append(f"worker {k} exited {p.returncode}\n{err[-3000:]}")
        assert not failures, "\n".join(failures)

        i = t.inbox
        with ctx.engine.connect() as conn:
            check_invariants(conn)
            by_status = dict(conn.execute(select(i.c.status, func.count()).group_by(i.c.status)).all())
            errors = conn.execute(select(i.c.event_id, i.c.note).where(
                i.c.status == "parked", i.c.note.like("error%"))).all()
            total = conn.execute(select(func.count()).select_from(i)).scalar_one()
            placed = conn.execute(select(func.count()).select_from(t.orders)).scalar_one()
        assert total == len(seed_events(random.Random(0), n_seed_orders)) + WORKERS * EVENTS_PER_WORKER
        assert by_status.get("pending", 0) == 0, by_status
        assert set(by_status) <= {"applied", "ignored", "parked"}, by_status
        assert not errors, f"events parked by an error (e.g. a deadlock) instead of applied: {errors[:5]}"
        assert by_status.get("applied", 0) > total * 0.8, by_status
        assert placed > n_seed_orders
    finally:
        ctx.engine.dispose()
