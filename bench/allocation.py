"""Benchmark of the allocation batch run (not a test): prints a table, writes JSON to bench/results/.

    python bench/allocation.py --db postgresql|sqlite|both --lines 1000000 --skus 50000 --warehouses 5

Each measured step runs in its own child process on its own copy of the generated database, so
peak memory (ru_maxrss) and caches belong to that step alone:
  (a) batch   services.batch.allocate_all end to end (read, allocate, ETAs, write lines/stock/
              allocation rows, domain events and audit rows), default chunking; with the Python
              process's CPU, on PostgreSQL the CPU of the database's server processes (by
              backend_type, from /proc: the server must run on this machine) and the WAL written;
  (b) eta     allocation.eta.project_etas in memory over all loaded lines (every line waiting);
              the engine's allocate() in memory is reported beside it;
  (c) floor   the same chunked reads and the same number of rows written with the same bulk
              statements as (a), and no decisions: what any implementation must pay;
  (d) naive   a textbook per-line ORM allocator (Session, queries + commit per line) on a
              --naive-lines sample in its own small database;
  (e) replen  one inventory.received through the inbox (store_events + drain) for a SKU with
              1,000 waiting lines, median of --replen-runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _db import PG_ADMIN, drop_database, new_database, pg_admin  # noqa: E402  (bench/ is the script's directory)
from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TODAY = NOW.date()
HOT_SKU = "SKU-HOT"
HOT_LINES = 1000
REGIONS = ("north", "south", "east", "west", "central")


# ----------------------------------------------------------------------------------------------
# Data: plain Python rows, per table, in column order (deterministic for a given seed)
# ----------------------------------------------------------------------------------------------

COLUMNS: dict[str, tuple[str, ...]] = {
    "warehouses": ("warehouse_id", "name", "region", "updated_at"),
    "suppliers": ("supplier_id", "name", "lead_time_days", "email", "updated_at"),
    "products": ("sku", "name", "price", "supplier_id", "lead_time_days", "reorder_point", "substitutes",
                 "category", "extra", "updated_at"),
    "customers": ("customer_id", "name", "tier", "region", "timezone", "locale", "contacts", "preferences",
                  "updated_at"),
    "stock": ("sku", "warehouse_id", "on_hand", "allocated", "counted_at"),
    "orders": ("order_id", "customer_id", "placed_at", "promised_date", "rush", "ship_complete", "channel",
               "source", "status"),
    "order_lines": ("order_id", "line_id", "sku", "qty", "unit_price", "qty_allocated", "qty_shipped", "status",
                    "eta", "eta_reason", "backordered_at", "last_checked", "severity"),
    "purchase_orders": ("po_id", "supplier_id", "warehouse_id", "expected_at", "status", "updated_at"),
    "po_lines": ("po_id", "sku", "qty", "received"),
}


class Dataset:
    """n_lines open order lines over n_skus SKUs and n_wh warehouses, plus HOT_LINES on HOT_SKU."""

    def __init__(self, n_lines: int, n_skus: int, n_wh: int, seed: int) -> None:
        self.n_lines, self.n_skus, self.n_wh, self.seed = n_lines, n_skus, n_wh, seed
        self.n_customers = max(10, n_lines // 10)
        self.n_suppliers = max(1, min(200, n_skus // 50))
        self.skus = [f"SKU-{i:06d}" for i in range(n_skus)]
        self.warehouses = [f"W{i:02d}" for i in range(1, n_wh + 1)]

    def tables(self) -> Iterator[tuple[str, Iterable[tuple[Any, ...]]]]:
        rnd = random.Random(self.seed)
        yield "warehouses", [(w, f"Warehouse {w}", REGIONS[i % len(REGIONS)], NOW)
                             for i, w in enumerate(self.warehouses)]
        yield "suppliers", [(f"SUP-{i:03d}", f"Supplier {i}", None if rnd.random() < 0.1 else rnd.randint(5, 30),
                             None, NOW) for i in range(self.n_suppliers)]
        prices: dict[str, float] = {}
        products = []
        for sku in [*self.skus, HOT_SKU]:
            prices[sku] = round(rnd.uniform(2, 200), 2)
            products.append((sku, f"Product {sku}", prices[sku], f"SUP-{rnd.randrange(self.n_suppliers):03d}",
                             None if rnd.random() < 0.5 else rnd.randint(3, 40), 0, "[]", None, "{}", NOW))
        yield "products", products
        tiers = ("standard",) * 16 + ("gold",) * 3 + ("platinum",)
        yield "customers", [(f"C{i:07d}", f"Customer {i}", rnd.choice(tiers), rnd.choice(REGIONS), "UTC", "en",
                             "{}", "{}", NOW) for i in range(self.n_customers)]
        stock = []
        for sku in self.skus:
            for w in self.warehouses:
                stock.append((sku, w, 0 if rnd.random() < 0.4 else rnd.randint(1, 25), 0, None))
        stock += [(HOT_SKU, w, 0, 0, None) for w in self.warehouses]
        yield "stock", stock
        orders: list[tuple[Any, ...]] = []
        lines: list[tuple[Any, ...]] = []
        n = 0
        o = 0
        while n < self.n_lines:
            o += 1
            k = min(rnd.choice((1, 1, 2, 2, 3)), self.n_lines - n)
            placed = NOW - timedelta(seconds=rnd.randrange(90 * 86400))
            oid = f"O{o:08d}"
            orders.append((oid, f"C{rnd.randrange(self.n_customers):07d}", placed,
                           (placed + timedelta(days=rnd.randint(3, 10))).date(), rnd.random() < 0.05,
                           k > 1 and rnd.random() < 0.02, "web", "bench", "open"))
            for j, sku in enumerate(rnd.sample(self.skus, k) if k <= len(self.skus) else self.skus[:k], 1):
                lines.append((oid, str(j), sku, rnd.randint(1, 5), prices[sku], 0, 0, "backordered", None, None,
                              placed, None, None))
            n += k
        for h in range(HOT_LINES):
            oid = f"H{h:08d}"
            placed = NOW - timedelta(days=30) + timedelta(minutes=h)
            orders.append((oid, f"C{rnd.randrange(self.n_customers):07d}", placed, placed.date() + timedelta(days=5),
                           False, False, "web", "bench", "open"))
            lines.append((oid, "1", HOT_SKU, rnd.randint(1, 3), prices[HOT_SKU], 0, 0, "backordered", None, None,
                          placed, None, None))
        yield "orders", orders
        yield "order_lines", lines
        del orders, lines
        pos, po_lines = [], []
        for p in range(max(1, self.n_skus // 2)):
            pid = f"PO-{p:07d}"
            pos.append((pid, f"SUP-{rnd.randrange(self.n_suppliers):03d}", rnd.choice(self.warehouses),
                        TODAY + timedelta(days=rnd.randint(-5, 60)), "open", NOW))
            for sku in rnd.sample(self.skus, min(len(self.skus), rnd.randint(1, 3))):
                po_lines.append((pid, sku, rnd.randint(10, 100), 0))
        for i, days in enumerate((7, 21)):
            pid = f"PO-HOT-{i}"
            pos.append((pid, "SUP-000", self.warehouses[0], TODAY + timedelta(days=days), "open", NOW))
            po_lines.append((pid, HOT_SKU, 400, 0))
        yield "purchase_orders", pos
        yield "po_lines", po_lines


def _sqlite_value(v: Any) -> Any:
    # What SQLAlchemy writes on SQLite: naive 'YYYY-MM-DD HH:MM:SS.ffffff', ISO dates, 0/1.
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bool):
        return int(v)
    return v


def load_dataset(url: str, data: Dataset) -> dict[str, int]:
    """Bulk load: COPY on PostgreSQL, one executemany transaction on SQLite."""
    counts: dict[str, int] = {}
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(_pg_dsn(url)) as conn, conn.cursor() as cur:
            for table, rows in data.tables():
                cols = COLUMNS[table]
                n = 0
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
                    for row in rows:
                        cp.write_row(row)
                        n += 1
                counts[table] = n
        with psycopg.connect(_pg_dsn(url), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        return counts
    con = sqlite3.connect(make_url(url).database or "", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("BEGIN")
    for table, rows in data.tables():
        cols = COLUMNS[table]
        rows = [tuple(_sqlite_value(v) for v in r) for r in rows]
        con.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
        counts[table] = len(rows)
    con.execute("COMMIT")
    con.execute("ANALYZE")
    con.close()
    return counts


# ----------------------------------------------------------------------------------------------
# Databases: fresh, cloned, dropped
# ----------------------------------------------------------------------------------------------


def _pg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)



def clone_database(url: str) -> str:
    if url.startswith("postgresql"):
        name = f"bench_{uuid.uuid4().hex[:10]}"
        pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(url).database}"')
        return make_url(url).set(database=name).render_as_string(hide_password=False)
    src = Path(make_url(url).database or "")
    dst = src.with_name(f"bench_{uuid.uuid4().hex[:10]}.db")
    shutil.copyfile(src, dst)
    return f"sqlite:///{dst}"



# ----------------------------------------------------------------------------------------------
# Phases (each run in a child process: `--phase NAME --url URL`)
# ----------------------------------------------------------------------------------------------


def _ctx(url: str) -> Any:
    from backorder.config import load_settings
    from services.context import Context
    from store.db import make_engine

    return Context(engine=make_engine(url), settings=load_settings(database_url=url), clock=lambda: NOW)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _BackendCpu:
    """CPU seconds (user + system, from /proc) of the server processes working for one database,
    by backend_type: the run's own connections, the parallel workers its queries start and the
    autovacuum its writes trigger. A thread samples pg_stat_activity every `every` seconds and keeps
    each process's last reading, so processes that come and go in between still count (minus at
    most one interval each). PostgreSQL must run on this machine; without /proc it reads 0."""

    def __init__(self, url: str, every: float = 0.1) -> None:
        import psycopg

        self._conn = psycopg.connect(_pg_dsn(url), autocommit=True)
        self._every = every
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = False
        self._tick = os.sysconf("SC_CLK_TCK")
        self._sample()
        self._first = {pid: cpu for pid, (_, cpu) in self._last.items()}

    def _sample(self) -> None:
        rows = self._conn.execute("SELECT pid, backend_type FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
        for pid, kind in rows:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self._last[pid] = (kind, (int(fields[11]) + int(fields[12])) / self._tick)  # utime, stime

    def _loop(self) -> None:
        while not self._stop:
            time.sleep(self._every)
            self._sample()

    def __enter__(self) -> _BackendCpu:
        import threading

        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join()
        self._sample()
        self._conn.close()

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, (kind, cpu) in self._last.items():
            out[kind] = round(out.get(kind, 0.0) + cpu - self._first.get(pid, 0.0), 2)
        return out


def _wal_lsn(conn: Any) -> int:
    return int(conn.execute(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar() or 0)


def phase_batch(url: str, opts: dict[str, Any]) -> dict[str, Any]:
    from contextlib import nullcontext

    from services.batch import DEFAULT_CHUNK_SKUS, allocate_all

    ctx = _ctx(url)
    chunk = opts.get("chunk_skus") or DEFAULT_CHUNK_SKUS
    workers = opts.get("workers") or None  # None: allocate_all's default
    # The synthetic backlog never told its customers anything, so a run that plans notices plans
    # one for nearly every line (an initial load, which `backorder allocate --no-notify` is for).
    notify = bool(opts.get("notify"))
    profile = opts.get("profile")
    pg = url.startswith("postgresql")
    if pg:
        with ctx.engine.connect() as c0:
            wal0 = _wal_lsn(c0)
    meter = _BackendCpu(url) if pg else None
    load = os.getloadavg()[0]
    with meter or nullcontext():
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        if profile:
            import cProfile

            prof = cProfile.Profile()
            report = prof.runcall(allocate_all, ctx, chunk_skus=chunk, notify=notify, workers=workers)
            prof.dump_stats(profile)
        else:
            report = allocate_all(ctx, chunk_skus=chunk, notify=notify, workers=workers)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    server: dict[str, Any] = {}
    if meter is not None:
        cpu_by_kind = meter.by_kind()
        with ctx.engine.connect() as c1:
            # WAL position is cluster-wide: other databases' writes in the meantime count too.
            server = {"pg_backend_cpu_seconds": round(sum(cpu_by_kind.values()), 2), "pg_cpu_by_kind": cpu_by_kind,
                      "wal_mb": round((_wal_lsn(c1) - wal0) / 2**20, 1)}
    again = allocate_all(ctx, chunk_skus=chunk, notify=notify, workers=workers)
    return {"seconds": seconds, "lines": report.lines_seen, "lines_changed": report.lines_changed,
            "units_allocated": report.units_allocated, "events": report.events_written,
            "audit": report.audit_written, "chunks": report.chunks, "chunk_skus": chunk,
            "notify": notify, "notifications": report.notifications, "workers": workers or "default",
            "python_cpu_seconds": cpu, "load_average_at_start": load,
            "load_average_at_end": os.getloadavg()[0], **server,
            "rerun_changes": again.lines_changed + again.events_written, "rerun_seconds": again.seconds,
            "steps": {k: round(v, 3) for k, v in report.step_seconds.items()}, "peak_rss_mb": _peak_mb()}


def phase_eta(url: str, opts: dict[str, Any]) -> dict[str, Any]:
    from allocation.engine import allocate
    from allocation.eta import project_etas
    from services.batch import _Sql
    from store import allocation_io as io

    ctx = _ctx(url)
    with ctx.engine.connect() as conn:
        sql = _Sql.for_conn(conn)
        skus = sql.open_skus(conn, None)
        t0 = time.perf_counter()
        loaded = sql.load(conn, skus)
        pos = sql.load_inbound(conn, skus)
        lead = sql.load_lead_times(conn, skus)
        load_s = time.perf_counter() - t0
        policy = ctx.settings.allocation_policy(io.warehouse_regions(conn))
    lines = loaded.lines
    gc.disable()  # as the batch run does while it holds a chunk (see services.batch._gc_paused)
    t0 = time.perf_counter()
    events = project_etas(lines, pos, policy, TODAY, lead, changed={})
    eta_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = allocate(lines, loaded.stocks, policy)
    alloc_s = time.perf_counter() - t0
    return {"lines": len(lines), "load_seconds": load_s, "eta_seconds": eta_s, "eta_events": len(events),
            "allocate_seconds": alloc_s, "allocate_events": len(result.events), "peak_rss_mb": _peak_mb()}


def phase_floor(url: str, opts: dict[str, Any]) -> dict[str, Any]:
    """The same chunked reads and the same row counts written with the same statements, no logic."""
    from services.batch import DEFAULT_CHUNK_SKUS, BatchReport, _Sql, _Writes, plan_chunks
    from store.db import make_engine, unit_of_work

    engine = make_engine(url)
    steps = BatchReport()
    chunk_skus = opts.get("chunk_skus") or DEFAULT_CHUNK_SKUS
    ratio = opts["ratios"]  # rows written per line read, from the batch run
    t0 = time.perf_counter()
    with engine.connect() as conn:
        sql = _Sql.for_conn(conn)
        skus = sql.open_skus(conn, None)
        chunks = plan_chunks(skus, sql.ship_complete_links(conn), chunk_skus)
    in_ = sql._in()
    n_read = n_written = 0
    for chunk in chunks:
        with unit_of_work(engine) as conn:
            sql.lock(conn, chunk)
            p = sql._skus_param(chunk)
            rows = sql._query(conn, sql._LINES.format(price=sql._price, in_skus=in_), (p,))
            sql._query(conn, "SELECT a.id, a.line_pk, a.warehouse_id, a.qty FROM order_lines l "
                             "JOIN allocations a ON a.line_pk = l.id AND a.status = 'allocated' "
                             f"WHERE l.sku {in_} AND l.status = 'partially_allocated'", (p,))
            stocks = sql._query(conn, f"SELECT sku, warehouse_id, on_hand, allocated FROM stock WHERE sku {in_} "
                                      "ORDER BY sku, warehouse_id", (p,))
            sql.load_inbound(conn, chunk)
            sql.load_lead_times(conn, chunk)
            n = len(rows)

            def take(r: float, n: int = n, rows: list[Any] = rows) -> list[Any]:
                k = round(r * n)
                return [rows[i % n] for i in range(k)] if n else []

            line_rows = [(r[0], r[5], r[13], r[14], r[15]) for r in take(ratio["lines_changed"])]
            allocs = [(r[0], r[2], "W01", r[3]) for r in take(ratio["alloc_rows"])]
            stock_rows = [(s[0], s[1], s[2], s[3]) for s in stocks[: round(ratio["stock_rows"] * len(stocks))]]
            events: list[list[Any]] = [["eta_changed", {
                "line_id": r[16], "order_id": r[1], "sku": r[2], "old_eta": None, "new_eta": "2026-03-20",
                "reason": "supplier_lead_time", "days_late": 3, "line_pk": r[0]}] for r in take(ratio["events"])]
            audit: list[list[Any]] = [
                [r[13], f"{r[1]}/{r[16]}", {"status": r[13], "qty_allocated": r[5], "allocations": {}},
                 {"status": r[13], "qty_allocated": r[5], "allocations": {"W01": r[3]}}]
                for r in take(ratio["audit"])]
            sql.write(conn, steps, NOW, _Writes(line_rows, allocs, [], stock_rows, events, audit))
            n_written += len(line_rows) + len(allocs) + len(stock_rows) + len(events) + len(audit)
            n_read += n
    return {"seconds": time.perf_counter() - t0, "lines": n_read, "rows_written": n_written,
            "steps": {k: round(v, 3) for k, v in steps.step_seconds.items()}, "peak_rss_mb": _peak_mb()}


def phase_replen(url: str, opts: dict[str, Any]) -> dict[str, Any]:
    """inventory.received for HOT_SKU (1,000 waiting lines), through store_events + drain."""
    from services.inbox import drain, store_events
    from store import tables as t

    ctx = _ctx(url)
    runs = int(opts.get("runs", 9))
    ms: list[float] = []
    events_per_run: list[int] = []
    de = t.domain_events
    for i in range(runs + 1):  # the first one warms caches and is not counted
        with ctx.engine.connect() as conn:
            before = conn.execute(select(de.c.id).order_by(de.c.id.desc()).limit(1)).scalar() or 0
        ev = {"event_id": f"bench-recv-{uuid.uuid4().hex}", "type": "inventory.received",
              "occurred_at": NOW.isoformat(), "source": "bench",
              "data": {"sku": HOT_SKU, "warehouse_id": "W01", "qty": 3}}
        t0 = time.perf_counter()
        _, ids = store_events(ctx, [ev])
        drain(ctx, ids)
        elapsed = (time.perf_counter() - t0) * 1000
        with ctx.engine.connect() as conn:
            after = conn.execute(select(de.c.id).order_by(de.c.id.desc()).limit(1)).scalar() or 0
            waiting = conn.execute(text("SELECT count(*) FROM order_lines WHERE sku = :s AND status IN "
                                        "('backordered', 'partially_allocated')"), {"s": HOT_SKU}).scalar()
        if i:
            ms.append(elapsed)
            events_per_run.append(after - before)
    return {"runs": runs, "median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
            "events_per_run": statistics.median(events_per_run), "waiting_lines_after": waiting,
            "peak_rss_mb": _peak_mb()}


def phase_naive(url: str, opts: dict[str, Any]) -> dict[str, Any]:
    """The textbook way: walk lines in FIFO order, per line query it and its stock, allocate, commit."""
    from sqlalchemy.orm import Session

    from store import models as m
    from store.db import make_engine

    engine = make_engine(url)
    waiting = ("backordered", "partially_allocated")
    t0 = time.perf_counter()
    n = allocated = 0
    with Session(engine) as s:
        ids = s.scalars(select(m.OrderLine.id).join(m.Order, m.Order.order_id == m.OrderLine.order_id)
                        .where(m.OrderLine.status.in_(waiting))
                        .order_by(m.Order.placed_at, m.Order.order_id, m.OrderLine.id)).all()
        s.commit()
        for pk in ids:
            line = s.get(m.OrderLine, pk)
            assert line is not None
            need = line.qty - line.qty_allocated
            got = 0
            for st in s.scalars(select(m.Stock).where(m.Stock.sku == line.sku).order_by(m.Stock.warehouse_id)):
                take = min(need - got, st.on_hand - st.allocated)
                if take <= 0:
                    continue
                st.allocated += take
                got += take
                s.add(m.Allocation(line_pk=pk, sku=line.sku, warehouse_id=st.warehouse_id, qty=take,
                                   status="allocated", created_at=NOW, updated_at=NOW))
                if got == need:
                    break
            before = line.status
            if got:
                line.qty_allocated += got
                line.status = "allocated" if line.qty_allocated == line.qty else "partially_allocated"
                allocated += 1
            if line.status != "allocated":
                po = s.execute(select(m.PurchaseOrder.po_id, m.PurchaseOrder.expected_at)
                               .join(m.POLine, m.POLine.po_id == m.PurchaseOrder.po_id)
                               .where(m.POLine.sku == line.sku, m.PurchaseOrder.status == "open")
                               .order_by(m.PurchaseOrder.expected_at).limit(1)).first()
                product = s.get(m.Product, line.sku)
                if po is not None:
                    line.eta, line.eta_reason = po.expected_at + timedelta(days=1), f"po:{po.po_id}"
                elif product is not None and product.lead_time_days is not None:
                    line.eta, line.eta_reason = TODAY + timedelta(days=product.lead_time_days), "supplier_lead_time"
            else:
                line.eta = line.eta_reason = None
            s.add(m.DomainEventRow(type="line_allocated" if got else "eta_changed",
                                   data={"line_id": line.line_id, "order_id": line.order_id, "sku": line.sku,
                                         "qty_allocated": line.qty_allocated, "line_pk": pk},
                                   created_at=NOW, cause="bench:naive"))
            if got:
                s.add(m.AuditEntry(at=NOW, actor="naive", action=line.status, entity="order_line",
                                   entity_id=f"{line.order_id}/{line.line_id}", reason="bench:naive",
                                   before={"status": before}, after={"status": line.status}))
            s.commit()
            n += 1
    return {"seconds": time.perf_counter() - t0, "lines": n, "lines_allocated": allocated,
            "peak_rss_mb": _peak_mb()}


def phase_load(url: str, opts: dict[str, Any]) -> dict[str, Any]:
    # In a child too: ru_maxrss survives fork + exec, so a driver that had held the generated rows
    # would lend every later phase its peak.
    t0 = time.perf_counter()
    counts = load_dataset(url, Dataset(opts["lines"], opts["skus"], opts["warehouses"], opts["seed"]))
    return {"rows": counts, "seconds": time.perf_counter() - t0, "peak_rss_mb": _peak_mb()}


PHASES: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    "load": phase_load, "batch": phase_batch, "eta": phase_eta, "floor": phase_floor, "replen": phase_replen,
    "naive": phase_naive,
}


def run_phase(name: str, url: str, opts: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--phase", name, "--url", url, "--opts", json.dumps(opts)],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------------------------


def conditions(kinds: list[str]) -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(), "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }
    if "postgresql" in kinds:
        eng = create_engine(PG_ADMIN)
        with eng.connect() as conn:
            info["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
            info["pg_settings"] = {k: conn.execute(text(f"SHOW {k}")).scalar()
                                   for k in ("shared_buffers", "work_mem", "synchronous_commit", "max_wal_size")}
        eng.dispose()
    try:
        import psycopg
        import sqlalchemy

        info["sqlalchemy"], info["psycopg"] = sqlalchemy.__version__, psycopg.__version__
    except ImportError:
        pass
    return info


def bench_db(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    res: dict[str, Any] = {"db": kind}
    say = print if not args.quiet else (lambda *a, **k: None)
    base = new_database(kind, workdir)
    made = [base]
    try:
        loaded = run_phase("load", base, {"lines": args.lines, "skus": args.skus, "warehouses": args.warehouses,
                                          "seed": args.seed})
        res["rows_loaded"], res["load_seconds"] = loaded["rows"], loaded["seconds"]
        say(f"[{kind}] loaded {sum(res['rows_loaded'].values()):,} rows in {res['load_seconds']:.1f}s")
        opts = {"chunk_skus": args.chunk_skus, "profile": args.profile and f"{args.profile}.{kind}",
                "notify": args.notify, "workers": args.workers}
        made.append(batch_url := clone_database(base))
        res["batch"] = run_phase("batch", batch_url, opts)
        say(f"[{kind}] batch: {res['batch']}")
        b = res["batch"]
        lines = max(1, b["lines"])
        with create_engine(batch_url).connect() as conn:
            alloc_rows = conn.execute(text("SELECT count(*) FROM allocations")).scalar() or 0
            stock_rows = conn.execute(text("SELECT count(*) FROM stock WHERE allocated > 0")).scalar() or 0
            all_stock = conn.execute(text("SELECT count(*) FROM stock")).scalar() or 1
        ratios = {"lines_changed": b["lines_changed"] / lines, "alloc_rows": alloc_rows / lines,
                  "stock_rows": stock_rows / all_stock, "events": b["events"] / lines, "audit": b["audit"] / lines}
        res["replen"] = run_phase("replen", batch_url, {"runs": args.replen_runs})
        say(f"[{kind}] replenishment: {res['replen']}")
        made.append(floor_url := clone_database(base))
        res["floor"] = run_phase("floor", floor_url, {"chunk_skus": args.chunk_skus, "ratios": ratios})
        say(f"[{kind}] floor: {res['floor']}")
        res["eta"] = run_phase("eta", base, {})
        say(f"[{kind}] eta: {res['eta']}")
        if args.naive_lines:
            naive = new_database(kind, workdir)
            made.append(naive)
            run_phase("load", naive, {"lines": args.naive_lines, "skus": max(1, args.naive_lines // 20),
                                      "warehouses": args.warehouses, "seed": args.seed})
            res["naive"] = run_phase("naive", naive, {})
            say(f"[{kind}] naive: {res['naive']}")
    finally:
        for url in made:
            drop_database(url)
    return res


def table(results: list[dict[str, Any]]) -> str:
    rows = [("db", "step", "lines", "seconds", "lines/s", "peak RSS MB", "note")]
    for r in results:
        db = r["db"]
        b, f, e = r["batch"], r["floor"], r["eta"]
        rows.append((db, "(a) batch allocate_all", f"{b['lines']:,}", f"{b['seconds']:.2f}",
                     f"{b['lines'] / b['seconds']:,.0f}", f"{b['peak_rss_mb']:.0f}",
                     f"{b['events']:,} events, {b['lines_changed']:,} lines changed, {b['chunks']} chunks, "
                     f"workers {b.get('workers', 'default')}, Python CPU {b.get('python_cpu_seconds', 0):.1f}s, "
                     + (f"PG backend CPU {b['pg_backend_cpu_seconds']:.1f}s, WAL {b['wal_mb']:,.0f} MB, "
                        if "pg_backend_cpu_seconds" in b else "")
                     + f"load {b.get('load_average_at_start', 0):.1f} at start; "
                     f"{b['seconds'] / f['seconds']:.2f}x floor"))
        rows.append((db, "(b) project_etas in memory", f"{e['lines']:,}", f"{e['eta_seconds']:.2f}",
                     f"{e['lines'] / e['eta_seconds']:,.0f}", f"{e['peak_rss_mb']:.0f}",
                     f"{e['eta_events']:,} events; allocate() in memory {e['allocate_seconds']:.2f}s"))
        rows.append((db, "(c) floor: same reads + writes", f"{f['lines']:,}", f"{f['seconds']:.2f}",
                     f"{f['lines'] / f['seconds']:,.0f}", f"{f['peak_rss_mb']:.0f}",
                     f"{f['rows_written']:,} rows written"))
        if "naive" in r:
            n = r["naive"]
            rows.append((db, "(d) naive per-line ORM", f"{n['lines']:,}", f"{n['seconds']:.2f}",
                         f"{n['lines'] / n['seconds']:,.0f}", f"{n['peak_rss_mb']:.0f}",
                         f"{(b['lines'] / b['seconds']) / (n['lines'] / n['seconds']):,.0f}x slower than batch"))
        p = r["replen"]
        rows.append((db, "(e) replenishment, 1,000 waiting", "1,000", f"{p['median_ms'] / 1000:.4f}",
                     f"{1000 / (p['median_ms'] / 1000):,.0f}", f"{p['peak_rss_mb']:.0f}",
                     f"median {p['median_ms']:.1f} ms (min {p['min_ms']:.1f}, max {p['max_ms']:.1f}) "
                     f"of {p['runs']}, {p['events_per_run']:.0f} events each"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    fmt = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))  # noqa: E731
    return "\n".join([fmt(rows[0]), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows[1:])])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=("postgresql", "sqlite", "both"), default="postgresql")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--skus", type=int, default=50_000)
    ap.add_argument("--warehouses", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--chunk-skus", type=int, default=0, help="SKUs per unit of work (0: the default)")
    ap.add_argument("--workers", type=int, default=0,
                    help="chunks in flight at once in (a) (0: allocate_all's default; SQLite always 1)")
    ap.add_argument("--naive-lines", type=int, default=20_000, help="sample size for (d); 0 skips it")
    ap.add_argument("--replen-runs", type=int, default=9)
    ap.add_argument("--profile", default="", help="write cProfile stats of (a) to PATH.<db>")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--notify", action="store_true", help="(a) also plans the notifications of its decisions")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--opts", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.url, json.loads(args.opts))))
        return
    kinds = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    run = {"args": {k: v for k, v in vars(args).items() if k not in ("phase", "url", "opts")},
           "conditions": conditions(kinds), "results": []}
    with tempfile.TemporaryDirectory(prefix="backorder-bench-") as tmp:
        for kind in kinds:
            run["results"].append(bench_db(kind, args, Path(tmp)))
    print()
    print(table(run["results"]))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"allocation-{args.db}-{args.lines}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(run, indent=2, default=str))
    print(f"\nconditions: {json.dumps(run['conditions'])}\nwritten: {path}")


if __name__ == "__main__":
    main()
