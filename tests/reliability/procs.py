"""Helpers of the reliability tests: `backorder serve|worker` subprocesses, a client that posts events and
retries what the API refused, an event stream, backend kills and invariant sampling, all on 127.0.0.1 and
on a fresh PostgreSQL database the test owns."""

from __future__ import annotations

import ctypes
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from store import tables as t
from tests.conftest import pg_admin_url
from tests.invariants import check_invariants

REPO = Path(__file__).resolve().parents[2]
STARTUP_BOUND_S = 120  # two shared cores: importing the app in several processes at once can take a while
SECRET = "whsec-reliability"
SOURCE = "rel"
SKUS = tuple(f"S{k:02d}" for k in range(40))  # several appliers seldom want the same SKU at once
WAREHOUSES = ("W1", "W2")
CUSTOMERS = ("C1", "C2", "C3", "C4")
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(pg_url: str, webhook_url: str, **extra: str) -> dict[str, str]:
    """The environment of every process under test: our store and webhook, no stray settings, no rate limit
    (one client posting thousands of events is the load, not an abuser), only warnings logged."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKORDER_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env |= {"BACKORDER_CONFIG": os.devnull, "BACKORDER_DATABASE_URL": pg_url,
            "BACKORDER_WEBHOOK__URL": webhook_url, "BACKORDER_WEBHOOK__SECRET": SECRET,
            "BACKORDER_WEBHOOK__ALLOW_HTTP": "true", "BACKORDER_WEBHOOK__ALLOW_PRIVATE": "true",
            "BACKORDER_LIMITS__ENABLED": "false", "BACKORDER_LOGGING__FORMAT": "text",
            "BACKORDER_LOGGING__LEVEL": "WARNING",
            "BACKORDER_NOTIFY__RULES": '{"ops_digest": {"enabled": false}}'}
    return env | extra


_SERIAL = itertools.count(1)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, however it dies (a timeout's SIGKILL),
    so no server or worker outlives its test."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Proc:
    """A `python -m backorder ...` child in its own session; its output is read on a thread so the pipe
    never fills, and kept for the failure message."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path, port: int | None = None) -> None:
        self.name = name
        self.port = port
        self.log_path = cwd / f"{name.split()[0]}-{next(_SERIAL)}.log"  # kept for a post-mortem
        self.proc = subprocess.Popen([sys.executable, "-m", "backorder", *args], cwd=cwd, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def serve(cls, name: str, env: dict[str, str], cwd: Path) -> Proc:
        port = free_port()
        return cls(name, ["serve", "--no-worker", "--port", str(port)], env, cwd, port)

    @classmethod
    def worker(cls, name: str, env: dict[str, str], cwd: Path) -> Proc:
        return cls(name, ["worker"], env, cwd)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self, tail: int = 4000) -> str:
        return "".join(self.lines)[-tail:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, deadline: float) -> None:
        """A server answers /healthz; a worker says it is dispatching."""
        while time.monotonic() < deadline:
            if not self.alive():
                break
            if self.port is None:
                if any("worker dispatching" in line for line in self.lines):
                    return
            else:
                try:
                    if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not start (exit {self.proc.poll()}):\n{self.output()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)  # a worker finishes the event it is applying first
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        self.log_path.write_text("".join(self.lines))


def start_all(procs: Iterable[Proc]) -> None:
    deadline = time.monotonic() + STARTUP_BOUND_S
    for p in procs:
        p.wait_ready(deadline)


def stop_all(procs: Iterable[Proc]) -> None:
    for p in procs:
        p.stop()


# -- events --------------------------------------------------------------------------------------------------

def ev(event_id: str, type_: str, data: dict[str, Any], minutes: float = 0) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(),
            "source": SOURCE, "data": data}


def seed_events() -> list[dict[str, Any]]:
    """Warehouses, products, customers (messages to them opted out: every decision reaches other systems as a
    webhook, so the receiver sees each planned message) and a little stock."""
    return [
        *(ev(f"w-{w}", "warehouse.upserted", {"warehouse_id": w, "name": w, "region": r})
          for w, r in zip(WAREHOUSES, ("north", "south"), strict=True)),
        *(ev(f"p-{s}", "product.upserted", {"sku": s, "name": f"Thing {s}", "price": 10, "lead_time_days": 5})
          for s in SKUS),
        *(ev(f"c-{c}", "customer.upserted", {"customer_id": c, "name": c, "region": r, "tier": tier,
                                              "preferences": {"opt_out": ["all"]}})
          for c, r, tier in zip(CUSTOMERS, ("north", "south", "north", "south"),
                                ("standard", "gold", "platinum", "standard"), strict=True)),
        *(ev(f"a0-{s}-{w}", "inventory.adjusted", {"sku": s, "warehouse_id": w, "on_hand": 3})
          for s in SKUS for w in WAREHOUSES),
    ]


class Stream:
    """One client's events: orders, receipts, counts, and shipments and cancellations of its own earlier orders,
    in a mix that keeps lines both waiting and being allocated. Deterministic per seed; ids unique per `tag`."""

    def __init__(self, tag: str, seed: int) -> None:
        self.tag = tag
        self.rng = random.Random(seed)
        self.n = 0
        self.placed: list[str] = []
        self.kinds: Counter[str] = Counter()

    def next(self) -> dict[str, Any]:
        rng, self.n = self.rng, self.n + 1
        eid, minutes = f"{self.tag}-{self.n}", 60 + self.n
        # Receipts bring about as many units as orders ask for: lines wait, then get stock, and the backlog of
        # waiting (ship-complete) lines stays bounded instead of every pass reaching every SKU.
        kind = rng.choices(["order", "receive", "adjust", "cancel", "ship"], [5, 4, 1, 1, 1])[0]
        if kind in ("cancel", "ship") and not self.placed:
            kind = "order"
        self.kinds[kind] += 1
        sku, wh = rng.choice(SKUS), rng.choice(WAREHOUSES)
        if kind == "receive":
            return ev(eid, "inventory.received", {"sku": sku, "warehouse_id": wh, "qty": rng.randint(2, 6)}, minutes)
        if kind == "adjust":
            return ev(eid, "inventory.adjusted", {"sku": sku, "warehouse_id": wh, "on_hand": rng.randint(0, 6)},
                      minutes)
        if kind in ("cancel", "ship"):
            order_id = self.placed.pop(rng.randrange(len(self.placed)))
            if kind == "ship":
                return ev(eid, "shipment.updated", {"order_id": order_id}, minutes)
            return ev(eid, "order.cancelled", {"order_id": order_id}, minutes)
        order_id = f"O-{eid}"
        self.placed.append(order_id)
        lines = [{"line_id": f"L{i}", "sku": s, "qty": rng.randint(1, 3), "unit_price": 10}
                 for i, s in enumerate(rng.sample(SKUS, rng.randint(1, 2)))]
        return ev(eid, "order.placed", {"order_id": order_id, "customer_id": rng.choice(CUSTOMERS),
                                        "placed_at": (T0 + timedelta(minutes=minutes)).isoformat(),
                                        "ship_complete": rng.random() < 0.1, "rush": rng.random() < 0.15,
                                        "lines": lines}, minutes)

    def batch(self, size: int) -> list[dict[str, Any]]:
        return [self.next() for _ in range(size)]


# -- the client ---------------------------------------------------------------------------------------------

@dataclass
class Posted:
    """What the API answered, over every client thread."""

    acknowledged: dict[tuple[str, str], str] = field(default_factory=dict)  # key -> accepted | duplicate
    statuses: Counter[int] = field(default_factory=Counter)
    refusals: list[str] = field(default_factory=list)  # 5xx bodies: the API must say why
    transport_errors: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def post_until_acknowledged(http: httpx.Client, batch: list[dict[str, Any]], posted: Posted,
                            deadline: float) -> None:
    """POST /events?wait=false, retried (same events, same ids) until the API answers 2xx; a retry of a batch
    whose first answer was lost reports the stored events as duplicates, which is what idempotency promises."""
    while True:
        assert time.monotonic() < deadline, f"the API never acknowledged a batch: {posted.statuses}"
        try:
            r = http.post("/events", params={"wait": "false"}, json=batch)
        except httpx.TransportError:
            with posted.lock:
                posted.transport_errors += 1
            time.sleep(0.1)
            continue
        with posted.lock:
            posted.requests += 1
            posted.statuses[r.status_code] += 1
            if r.status_code >= 500:
                posted.refusals.append(f"{r.status_code} {r.headers.get('content-type')}: {r.text[:200]}")
        if r.status_code == 202:
            results = r.json()["results"]
            with posted.lock:
                for res in results:
                    key = (res["source"], res["event_id"])
                    # accepted once is what counts: a later duplicate answer is the retry of a lost answer
                    if posted.acknowledged.get(key) != "accepted":
                        posted.acknowledged[key] = res["status"]
            return
        assert r.status_code >= 500, f"POST /events answered {r.status_code}: {r.text[:500]}"
        time.sleep(0.1)


def load(base_urls: list[str], stream: Stream, total: int, batch: int, posted: Posted, deadline: float,
         pause_s: float = 0.0) -> None:
    """Post `total` events of `stream` in batches, spread over the servers in turn."""
    clients = [httpx.Client(base_url=u, timeout=30) for u in base_urls]
    try:
        sent = 0
        while sent < total:
            n = min(batch, total - sent)
            post_until_acknowledged(clients[(sent // batch) % len(clients)], stream.batch(n), posted, deadline)
            sent += n
            if pause_s:
                time.sleep(pause_s)
    finally:
        for c in clients:
            c.close()


# -- the store -----------------------------------------------------------------------------------------------

def terminate_backends(admin: Engine, database: str) -> int:
    """pg_terminate_backend on every connection to `database` (ours alone), from a connection to another
    database; returns how many were killed."""
    with admin.connect() as conn:
        return len(conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
        ), {"db": database}).all())


def admin_engine() -> Engine:
    return create_engine(make_url(pg_admin_url()), isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def database_name(url: str) -> str:
    return str(make_url(url).database)


def snapshot_check(engine: Engine, where: str) -> None:
    """The allocation invariants at one committed snapshot: a read-only REPEATABLE READ transaction, so
    every query of the check sees the same commits."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True) as conn:
        check_invariants(conn, where)
        conn.rollback()


def statuses(engine: Engine, table: Any) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(table.c.status, func.count()).group_by(table.c.status)).tuples().all())


def wait_settled(engine: Engine, deadline: float, what: str) -> tuple[dict[str, int], dict[str, int]]:
    """Until no inbox event is pending and every outbox row is sent (or delivered)."""
    inbox, outbox = statuses(engine, t.inbox), statuses(engine, t.outbox)
    while time.monotonic() < deadline:
        inbox, outbox = statuses(engine, t.inbox), statuses(engine, t.outbox)
        if not inbox.get("pending") and outbox and set(outbox) <= {"sent", "delivered"}:
            return inbox, outbox
        time.sleep(0.5)
    raise AssertionError(f"{what}: not settled in time; inbox {inbox}, outbox {outbox}")


class Background(threading.Thread):
    """A daemon thread that keeps what it raised, so the test can fail with it."""

    def __init__(self, name: str, target: Any, *args: Any) -> None:
        super().__init__(name=name, daemon=True)
        self._fn, self._args = target, args
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn(*self._args)
        except BaseException as exc:  # reported by check()
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"{self.name} failed: {self.error!r}") from self.error
