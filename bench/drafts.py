"""Benchmark of drafts, approvals and substitutions (issue 6; not a test): prints its figures and the conditions.

    python bench/drafts.py [--db sqlite|postgresql|both] [--n 300] [--race 200] [--compose 200] [--accept 200]

Per database (a fresh scratch database each: PostgreSQL beside BACKORDER_BENCH_PG, SQLite a temp file), a
catalog loaded through the inbox like production loads it: 4 warehouses in 4 regions, 400 products in 20
categories (each with attributes: color, size, material, cordless; 60 out-of-stock products have a configured
substitute with stock, 40 are in categories where nothing is in stock), 300 customers of every tier (60%
standard, 25% gold, 15% platinum; en, en-GB and es), stock in 1-2 warehouses for 60% of the other products of
the stocked categories, and 400 earlier orders of 1-3 lines. The clock is a settable one fixed at 2026-03-02
09:00 UTC (like tests/conftest.py's Clock), so ETAs are the same every run and nothing expires or escalates
under the bench. No LLM unless said.

  1 planning  per-event latency of services.inbox.store_events + drain for an order.placed of one line that
              backorders (no stock), for a standard and a gold customer, each with a product whose configured
              substitute is in stock and with one that has no candidate: standard = template notice (+ the
              substitution offer, from its template); gold = a draft + its approval card (+ an offer draft and
              its card). Plus standard / no candidate with [substitutes] enabled = false (no search at all).
              The five kinds interleave; --warmup of each first, not counted.
  2 decisions services.approvals.approve / reject over --n pending drafts each (in process, via="api"), and
              the same through HTTP POST /drafts/{id}/approve|reject against `python -m backorder serve
              --no-worker` (uvicorn) in a child process on a loopback port, one keep-alive connection.
  3 race      --race pending drafts, two threads approving each at once (a barrier per draft): exactly one
              wins; the customer outbox rows of those drafts must number --race (exit 1 if not); the
              loser's AlreadyDecided latency from the barrier.
  4 compose   services.drafts.compose_due with [llm] pointing at tests/fakes/openai_server.FakeOpenAI (in a
              thread of this process) answering at once with a grounded draft built from the request's facts:
              per draft (limit=1 per call) over --compose drafts, and drafts/s with the worker's batching over
              --compose more. Then drafting.grounding.check alone per draft (model texts and template texts).
  5 accept    services.substitutions.accept over --accept offers made to standard customers in figure 1
              (switch the line, an allocation pass for both SKUs, audit, the confirmation planned).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402

from bench._db import PG_ADMIN, drop_database, new_database  # noqa: E402
from bench._machine import cpu_model, package_version, pg_version  # noqa: E402
from bench._notify_helpers import Proc, free_port, percentile, table, wait_http  # noqa: E402

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SOURCE = "bench"
WAREHOUSES = (("LDS", "Leeds", "north"), ("BRS", "Bristol", "south"), ("MAN", "Manchester", "west"),
              ("LON", "London", "east"))
REGIONS = tuple(w[2] for w in WAREHOUSES)
# (prefix, noun, base price, unit of size, sizes): 15 categories with stock, 5 where nothing is in stock
CATEGORIES = (
    ("KTL", "kettle", 40, "L", (1.0, 1.5, 1.7)), ("TST", "toaster", 35, "-slice", (2, 4)),
    ("BLD", "blender", 60, "W", (500, 800, 1000)), ("SCL", "kitchen scale", 25, "kg", (5, 10)),
    ("LMP", "desk lamp", 30, "W", (6, 9, 12)), ("FLP", "floor lamp", 80, "W", (12, 18)),
    ("LED", "LED panel", 55, "cm", (30, 60)), ("DRL", "cordless drill", 120, "V", (12, 18)),
    ("SAW", "circular saw", 140, "mm", (165, 190)), ("HSE", "garden hose", 28, "m", (15, 25, 30)),
    ("FAN", "desk fan", 45, "cm", (23, 30)), ("HTR", "fan heater", 50, "W", (1000, 2000)),
    ("VAC", "stick vacuum", 150, "W", (100, 150)), ("IRN", "steam iron", 38, "W", (2000, 2400)),
    ("MUG", "travel mug", 14, "ml", (350, 450)),
    ("GRL", "contact grill", 70, "W", (1500, 2000)), ("SMK", "smoke alarm", 18, "y", (5, 10)),
    ("PMP", "garden pump", 130, "W", (400, 800)), ("TRM", "hedge trimmer", 95, "cm", (45, 55)),
    ("WST", "weather station", 65, "ch", (3, 5)),
)
STOCKED_CATEGORIES = 15
PER_CATEGORY = 20
COLORS = ("black", "white", "silver", "blue", "red", "green")
MATERIALS = ("steel", "plastic", "aluminium", "glass")
FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kemi", "Luis", "Maya",
         "Nils", "Olga", "Pablo", "Rosa", "Sam", "Tomas", "Uma", "Vera", "Will", "Xena", "Yusuf", "Zoe")
LAST = ("Lovelace", "Okafor", "Garcia", "Smith", "Novak", "Haddad", "Kim", "Silva", "Brown", "Rossi")
LOCALES = (("en", "Europe/London", 0.7), ("en-GB", "Europe/London", 0.15), ("es", "Europe/Madrid", 0.15))
APPROVER_ROLES = frozenset({"approver"})


class Clock:
    """A settable clock (tests/conftest.py's), so ETAs, ages and expiry do not depend on the day of the run."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": "2026-03-02T08:59:00Z", "source": SOURCE,
            "data": data}


class Catalog:
    """The master data (as events), and which SKUs play which part."""

    def __init__(self, seed: int, n_customers: int = 300) -> None:
        rnd = random.Random(seed)
        self.events: list[dict[str, Any]] = [
            ev(f"wh-{w}", "warehouse.upserted", {"warehouse_id": w, "name": name, "region": region})
            for w, name, region in WAREHOUSES]
        self.price: dict[str, float] = {}
        self.with_sub: list[str] = []   # no stock; a configured substitute with plenty of stock
        self.no_sub: list[str] = []     # no stock; nothing in its category is in stock or on order
        self.in_stock: list[str] = []
        self.all: list[str] = []
        stock: list[dict[str, Any]] = []
        for c, (prefix, noun, base, unit, sizes) in enumerate(CATEGORIES):
            category = noun + "s"
            stocked = c < STOCKED_CATEGORIES
            for j in range(PER_CATEGORY):
                sku = f"{prefix}-{100 + j}"
                size = sizes[j % len(sizes)]
                color = COLORS[(j * 7 + c) % len(COLORS)]
                material = MATERIALS[(j + c) % len(MATERIALS)]
                price = round(base * rnd.uniform(0.85, 1.25), 2)
                data: dict[str, Any] = {
                    "sku": sku, "name": f"{color.title()} {noun} {size}{unit}", "price": price, "category": category,
                    "lead_time_days": rnd.randint(14, 45),
                    "attributes": {"color": color, "size": size, "material": material, "cordless": j % 3 == 0}}
                if stocked and j < 4:  # originals with a configured substitute (j + 10), which has stock
                    data["substitutes"] = [f"{prefix}-{110 + j}"]
                    self.with_sub.append(sku)
                elif stocked and 10 <= j < 14:  # those substitutes: close in price, plenty of stock
                    data["price"] = price = round(self.price[f"{prefix}-{100 + j - 10}"] * rnd.uniform(0.95, 1.1), 2)
                    data["attributes"]["color"] = COLORS[(j + 1) % len(COLORS)]
                    for w in rnd.sample([w[0] for w in WAREHOUSES], 2):
                        stock.append({"sku": sku, "warehouse_id": w, "on_hand": 100_000})
                elif stocked and rnd.random() < 0.6:
                    for w in rnd.sample([w[0] for w in WAREHOUSES], rnd.randint(1, 2)):
                        stock.append({"sku": sku, "warehouse_id": w, "on_hand": rnd.randint(1, 25)})
                    self.in_stock.append(sku)
                elif not stocked and j < 8:
                    self.no_sub.append(sku)
                self.price[sku] = price
                self.all.append(sku)
                self.events.append(ev(f"p-{sku}", "product.upserted", data))
        self.events += [ev(f"s-{s['sku']}-{s['warehouse_id']}", "inventory.adjusted", s) for s in stock]
        tiers = ["standard"] * 60 + ["gold"] * 25 + ["platinum"] * 15
        self.customers: dict[str, list[str]] = {"standard": [], "gold": [], "platinum": []}
        for k in range(n_customers):
            cid = f"C{k + 1:04d}"
            tier = tiers[k % len(tiers)]
            locale, tz, _ = rnd.choices(LOCALES, weights=[w for *_, w in LOCALES])[0]
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            self.customers[tier].append(cid)
            self.events.append(ev(f"c-{cid}", "customer.upserted", {
                "customer_id": cid, "name": f"{first} {last}", "tier": tier, "region": rnd.choice(REGIONS),
                "timezone": tz, "locale": locale, "tags": ["trade"] if k % 5 == 0 else [],
                "contacts": {"email": f"{first.lower()}.{last.lower()}{k}@example.com",
                             "phone": f"+4477009{k:05d}"}}))
        self.rnd = rnd
        self.seq = 0

    def order(self, customer_id: str, skus: Sequence[str]) -> dict[str, Any]:
        self.seq += 1
        order_id = f"SO-{100000 + self.seq}"
        lines = [{"line_id": str(i + 1), "sku": sku, "qty": self.rnd.randint(1, 3), "unit_price": self.price[sku]}
                 for i, sku in enumerate(skus)]
        return ev(f"o-{order_id}", "order.placed", {"order_id": order_id, "customer_id": customer_id,
                                                    "channel": "web", "lines": lines})

    def history(self, n: int) -> list[dict[str, Any]]:
        """Earlier orders of 1-3 lines over the whole catalog, from every customer."""
        everyone = [c for cs in self.customers.values() for c in cs]
        return [self.order(self.rnd.choice(everyone), self.rnd.sample(self.all, self.rnd.randint(1, 3)))
                for _ in range(n)]


def apply(ctx: Any, events: Sequence[dict[str, Any]]) -> None:
    from services.inbox import drain, store_events

    for start in range(0, len(events), 500):
        _, ids = store_events(ctx, events[start:start + 500])
        drain(ctx, ids)


def count(ctx: Any, sql: str, params: dict[str, Any] | None = None) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(text(sql), params or {}).scalar() or 0)


def summary(values: Sequence[float]) -> dict[str, float]:
    s = sorted(values)
    return {"n": len(s), "p50": percentile(s, 50), "p99": percentile(s, 99), "max": s[-1] if s else float("nan"),
            "mean": statistics.fmean(s) if s else float("nan")}


def load1() -> float:
    return os.getloadavg()[0]


# ----------------------------------------------------------------------------------------------
# Figure 1: planning an order.placed that backorders one line
# ----------------------------------------------------------------------------------------------

# (tier, product): "sub" a product whose configured substitute is in stock, "none" one with no candidate,
# "off" the same with [substitutes] enabled = false (no search at all: what planning cost before issue 6's offers).
VARIANTS = (("standard", "sub"), ("standard", "none"), ("standard", "off"), ("gold", "sub"), ("gold", "none"))
VARIANT_LABEL = {"sub": "substitute in stock", "none": "no candidate", "off": "no candidate, substitutes off"}


def figure_planning(ctx: Any, cat: Catalog, n: int, warmup: int) -> dict[str, Any]:
    from backorder.config import load_settings
    from services.context import Context
    from services.inbox import drain, store_events

    off = Context(engine=ctx.engine, clock=ctx.clock, settings=load_settings(
        database_url=ctx.settings.database_url, notify={"rules": {"ops_digest": {"enabled": False}}},
        substitutes={"enabled": False}))

    times: dict[tuple[str, str], list[float]] = {v: [] for v in VARIANTS}
    orders: dict[tuple[str, str], list[str]] = {v: [] for v in VARIANTS}
    load = load1()
    for i in range(warmup + n):
        for tier, kind in VARIANTS:
            sku = cat.rnd.choice(cat.with_sub if kind == "sub" else cat.no_sub)
            event = cat.order(cat.rnd.choice(cat.customers[tier]), [sku])
            use = off if kind == "off" else ctx
            t0 = time.perf_counter()
            _, ids = store_events(use, [event])
            drain(use, ids)
            elapsed = time.perf_counter() - t0
            if i >= warmup:
                times[(tier, kind)].append(elapsed)
                orders[(tier, kind)].append(event["data"]["order_id"])
    out: dict[str, Any] = {"load": load, "orders": orders}
    for v in VARIANTS:
        out[f"{v[0]}/{v[1]}"] = {**summary(times[v]), **produced(ctx, orders[v])}
    return out


def produced(ctx: Any, order_ids: list[str]) -> dict[str, float]:
    """What the measured events made, per event: customer rows, drafts, approval cards, offers, waiting lines."""
    from store import tables as t

    o, d, so, ln = t.outbox, t.drafts, t.substitution_offers, t.order_lines
    n = max(1, len(order_ids))
    with ctx.engine.connect() as conn:
        notices = conn.execute(select(func.count()).select_from(o).where(
            o.c.order_id.in_(order_ids), o.c.audience == "customer")).scalar_one()
        draft_ids = [f"draft:{x}" for x in conn.execute(select(d.c.id).where(d.c.order_id.in_(order_ids))).scalars()]
        cards = conn.execute(select(func.count()).select_from(o).where(
            o.c.cause.in_(draft_ids), o.c.kind == "approval_request")).scalar_one() if draft_ids else 0
        offers = conn.execute(select(func.count()).select_from(so).where(so.c.order_id.in_(order_ids))).scalar_one()
        waiting = conn.execute(select(func.count()).select_from(ln).where(
            ln.c.order_id.in_(order_ids), ln.c.status == "backordered")).scalar_one()
    return {"notices": notices / n, "drafts": len(draft_ids) / n, "cards": cards / n, "offers": offers / n,
            "waiting": waiting / n}


# ----------------------------------------------------------------------------------------------
# Figure 2: decisions, in process and over HTTP
# ----------------------------------------------------------------------------------------------


def pending_drafts(ctx: Any) -> list[int]:
    from store import tables as t

    with ctx.engine.connect() as conn:
        return list(conn.execute(select(t.drafts.c.id).where(t.drafts.c.status == "pending")
                                 .order_by(t.drafts.c.id)).scalars())


def ensure_pending(ctx: Any, cat: Catalog, want: int) -> None:
    """Enough pending drafts for the decisions: more gold and platinum orders (not timed)."""
    have = len(pending_drafts(ctx))
    if have >= want:
        return
    vip = cat.customers["gold"] + cat.customers["platinum"]
    apply(ctx, [cat.order(cat.rnd.choice(vip), [cat.rnd.choice(cat.no_sub)]) for _ in range(want - have)])


def decide_in_process(ctx: Any, ids: list[int], warmup: int, action: str) -> dict[str, Any]:
    from services import approvals

    who = approvals.Approver("ana", APPROVER_ROLES)
    decide: Callable[[int], Any] = (lambda i: approvals.approve(ctx, i, who, via="api")) if action == "approve" \
        else (lambda i: approvals.reject(ctx, i, who, via="api", reason="bench"))
    load = load1()
    times = []
    for k, draft_id in enumerate(ids):
        t0 = time.perf_counter()
        view = decide(draft_id)
        elapsed = time.perf_counter() - t0
        if view["status"] != ("approved" if action == "approve" else "rejected"):
            raise RuntimeError(f"{action} {draft_id}: {view['status']}")
        if k >= warmup:
            times.append(elapsed)
    return {**summary(times), "load": load}


def server_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKORDER_") or k == "BACKORDER_BENCH_PG"}
    env.update({"BACKORDER_CONFIG": os.devnull, "BACKORDER_DATABASE_URL": url,
                "BACKORDER_NOTIFY__RULES": '{"ops_digest": {"enabled": false}}',
                "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)})
    return env


def decide_http(url: str, batches: dict[str, list[int]], warmup: int, work: Path) -> dict[str, Any]:
    import requests

    port = free_port()
    server = Proc(["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)], server_env(url),
                  work / f"serve-{port}.log").start()
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {}
    try:
        wait_http(base + "/healthz", server)
        with requests.Session() as session:
            for action, ids in batches.items():
                load = load1()
                times = []
                for k, draft_id in enumerate(ids):
                    t0 = time.perf_counter()
                    r = session.post(f"{base}/drafts/{draft_id}/{action}", timeout=30)
                    elapsed = time.perf_counter() - t0
                    if r.status_code != 200:
                        raise RuntimeError(f"POST /drafts/{draft_id}/{action}: HTTP {r.status_code}: {r.text[:300]}")
                    if k >= warmup:
                        times.append(elapsed)
                out[action] = {**summary(times), "load": load}
            load = load1()
            late = []
            for draft_id in batches["approve"][warmup:warmup + 100]:  # decided already: the 409 path
                t0 = time.perf_counter()
                r = session.post(f"{base}/drafts/{draft_id}/approve", timeout=30)
                late.append(time.perf_counter() - t0)
                if r.status_code != 409 or not r.json()["detail"].startswith("already approved by api at "):
                    raise RuntimeError(f"second approve of {draft_id}: HTTP {r.status_code}: {r.text[:300]}")
            out["409"] = {**summary(late), "load": load}
    except BaseException:
        print(server.tail(), file=sys.stderr)
        raise
    finally:
        out["stopped"] = server.stop(10)
    return out


# ----------------------------------------------------------------------------------------------
# Figure 3: two approvers at once
# ----------------------------------------------------------------------------------------------


def figure_race(ctx: Any, ids: list[int]) -> dict[str, Any]:
    from services import approvals
    from store import tables as t

    barrier = threading.Barrier(2)
    results: dict[int, list[tuple[str, float]]] = {i: [] for i in ids}
    lock = threading.Lock()

    def approver(name: str) -> None:
        who = approvals.Approver(name, APPROVER_ROLES)
        for draft_id in ids:
            barrier.wait()
            t0 = time.perf_counter()
            try:
                approvals.approve(ctx, draft_id, who, via="slack")
                outcome = "won"
            except approvals.AlreadyDecided as exc:
                outcome = "lost" if str(exc).startswith("already approved by ") else f"odd: {exc}"
            except Exception as exc:  # an error is a failed check, not a crash of the bench
                outcome = f"error: {type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - t0
            with lock:
                results[draft_id].append((outcome, elapsed))

    load = load1()
    threads = [threading.Thread(target=approver, args=(name,)) for name in ("ana", "ben")]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    seconds = time.perf_counter() - t0
    won = [s for r in results.values() for o, s in r if o == "won"]
    lost = [s for r in results.values() for o, s in r if o == "lost"]
    odd = [o for r in results.values() for o, _ in r if o not in ("won", "lost")]
    one_winner = sum(1 for r in results.values() if [o for o, _ in r].count("won") == 1)
    o = t.outbox
    causes = [f"draft:{i}" for i in ids]
    with ctx.engine.connect() as conn:
        customer_rows = conn.execute(select(func.count()).select_from(o).where(
            o.c.cause.in_(causes), o.c.audience == "customer")).scalar_one()
        audits = conn.execute(select(func.count()).select_from(t.audit_log).where(
            t.audit_log.c.action == "draft_approved", t.audit_log.c.entity_id.in_([str(i) for i in ids]))).scalar_one()
    ok = customer_rows == len(ids) and one_winner == len(ids) and len(lost) == len(ids) and not odd \
        and audits == len(ids)
    return {"won": summary(won), "lost": summary(lost), "odd": odd[:5], "n_odd": len(odd), "one_winner": one_winner,
            "customer_rows": customer_rows, "audits": audits, "ok": ok, "seconds": seconds, "load": load}


# ----------------------------------------------------------------------------------------------
# Figure 4: composing with a model (fake, instant, grounded)
# ----------------------------------------------------------------------------------------------


def grounded_reply(user: dict[str, Any]) -> dict[str, Any]:
    """A good draft: only the facts of the request, dates as the request prints them."""
    facts, dates = user["facts"], user.get("printed", {}).get("dates", {})
    name = (facts.get("customer") or {}).get("name") or "there"
    order = (facts.get("order") or {}).get("id")
    item = (facts.get("items") or [{}])[0]
    eta = item.get("eta")
    when = f" We now expect them on {dates.get(eta, eta)}." if eta else ""
    offer = facts.get("offer")
    if offer:
        text_ = (f"Dear {name}, we are sorry: {item['name']} ({item['sku']}) in order {order} is on backorder."
                 f"{when} We could send you {offer['qty']} × {offer['substitute_name']} ({offer['substitute_sku']}) "
                 f"instead, available {dates.get(offer['available_on'], offer['available_on'])}, at the price you "
                 "already paid.")
        used = ["order.id", "items[0].eta", "offer.qty", "offer.substitute_sku", "offer.available_on"]
    else:
        text_ = (f"Dear {name}, we are sorry: the {item['qty']} × {item['name']} ({item['sku']}) in order {order} "
                 f"are on backorder.{when} We will write again as soon as they ship, and thank you for your "
                 "patience.")
        used = ["order.id", "items[0].qty", "items[0].eta"]
    return {"text": text_, "channel": user["channel"], "facts_used": used}


def grounded_fake() -> Any:
    from aiohttp import web

    from tests.fakes.openai_server import FakeOpenAI

    class GroundedOpenAI(FakeOpenAI):
        """FakeOpenAI answering every request at once with a draft grounded in that request's facts."""

        name = "fake-openai-grounded"
        answered = 0

        async def _completions(self, request: web.Request) -> web.Response:
            body = await request.json()
            self.answered += 1
            content = json.dumps(grounded_reply(json.loads(body["messages"][-1]["content"])), ensure_ascii=False)
            return self._completion(body, {"role": "assistant", "content": content, "refusal": None})

    return GroundedOpenAI()


def figure_compose(ctx: Any, cat: Catalog, n: int, warmup: int) -> dict[str, Any]:
    from backorder.config import load_settings
    from drafting.grounding import check
    from services import drafts
    from services.context import Context
    from store import tables as t

    d = t.drafts
    with grounded_fake() as fake:
        settings = load_settings(database_url=ctx.settings.database_url,
                                 notify={"rules": {"ops_digest": {"enabled": False}}},
                                 llm={"base_url": fake.base_url, "model": "fake-1", "api_key": "k"})
        llm = Context(engine=ctx.engine, settings=settings, clock=ctx.clock)
        first = count(ctx, "SELECT coalesce(max(id), 0) FROM drafts")
        # Gold orders of a product with a substitute in stock: a delay notice and an offer to draft each.
        apply(llm, [cat.order(cat.rnd.choice(cat.customers["gold"]), [cat.rnd.choice(cat.with_sub)])
                    for _ in range((2 * n + warmup + 1) // 2 + 1)])
        drafting = count(ctx, "SELECT count(*) FROM drafts WHERE status = 'drafting'")
        for _ in range(warmup):
            drafts.compose_due(llm, limit=1)
        load = load1()
        per_draft = []
        for _ in range(n):
            t0 = time.perf_counter()
            done = drafts.compose_due(llm, limit=1)
            per_draft.append(time.perf_counter() - t0)
            if done != 1:
                raise RuntimeError(f"compose_due(limit=1) composed {done}")
        load_batch = load1()
        t0 = time.perf_counter()
        batched = calls = 0
        while batched < n:
            done = drafts.compose_due(llm)
            calls += 1
            if done == 0:
                break
            batched += done
        batch_seconds = time.perf_counter() - t0
        answered = fake.answered
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(d.c.text, d.c.template_text, d.c.facts, d.c.locale, d.c.source, d.c.grounding)
                            .where(d.c.id > first, d.c.status != "drafting").order_by(d.c.id)).all()
    by_source: dict[str, int] = {}
    for r in rows:
        reason = (r.grounding or {}).get("fallback_reason")
        key = r.source if reason is None else f"{r.source} ({reason})"
        by_source[key] = by_source.get(key, 0) + 1
    attempts = statistics.fmean([(r.grounding or {}).get("attempts", 0) for r in rows]) if rows else float("nan")
    grounding = {}
    load_check = load1()
    for label, pick in (("model", lambda r: r.text), ("template", lambda r: r.template_text)):
        samples = [(pick(r), r.facts, r.locale) for r in rows]
        for txt, facts, locale in samples[:warmup]:
            check(txt, facts, locale)
        times, problems = [], 0
        for txt, facts, locale in samples:
            t0 = time.perf_counter()
            found = check(txt, facts, locale)
            times.append(time.perf_counter() - t0)
            problems += bool(found)
        grounding[label] = {**summary(times), "chars": statistics.fmean(len(s[0]) for s in samples),
                            "with_problems": problems}
    return {"per_draft": {**summary(per_draft), "load": load}, "made": drafting,
            "batch": {"drafts": batched, "seconds": batch_seconds, "calls": calls, "load": load_batch,
                      "rate": batched / batch_seconds if batch_seconds else float("nan")},
            "sources": by_source, "attempts": attempts, "requests": answered, "grounding": grounding,
            "load_check": load_check}


# ----------------------------------------------------------------------------------------------
# Figure 5: accepting a substitution offer
# ----------------------------------------------------------------------------------------------


def figure_accept(ctx: Any, offer_order_ids: list[str], n: int, warmup: int) -> dict[str, Any]:
    from services import substitutions
    from store import tables as t

    so = t.substitution_offers
    with ctx.engine.connect() as conn:
        offers = conn.execute(select(so.c.id, so.c.customer_id).where(
            so.c.order_id.in_(offer_order_ids), so.c.status == "offered").order_by(so.c.id)).all()
    offers = offers[:warmup + n]
    load = load1()
    times, allocated, closed = [], 0, 0
    for k, (offer_id, customer_id) in enumerate(offers):
        t0 = time.perf_counter()
        try:
            got = substitutions.accept(ctx, offer_id, customer_id=customer_id, via="sms", actor=customer_id)
        except substitutions.OfferClosed:  # withdrawn on the way: no longer sooner (counted, not timed)
            closed += 1
            continue
        elapsed = time.perf_counter() - t0
        if k >= warmup:
            times.append(elapsed)
            allocated += got["new_line"]["qty_allocated"] == got["qty"]
    return {**summary(times), "allocated_at_once": allocated, "closed": closed, "load": load}


# ----------------------------------------------------------------------------------------------
# One database
# ----------------------------------------------------------------------------------------------


def make_context(url: str, clock: Clock) -> Any:
    from backorder.config import load_settings
    from services.context import Context
    from store.db import make_engine

    settings = load_settings(database_url=url, notify={"rules": {"ops_digest": {"enabled": False}}})
    return Context(engine=make_engine(url), settings=settings, clock=clock)


def say(kind: str, msg: str) -> None:
    print(f"[{kind}] {msg}", file=sys.stderr, flush=True)


def run_db(kind: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    url = new_database(kind, work, "bench_drafts")
    clock = Clock(NOW)
    ctx = make_context(url, clock)
    res: dict[str, Any] = {}
    try:
        cat = Catalog(args.seed)
        t0 = time.perf_counter()
        apply(ctx, cat.events)
        apply(ctx, cat.history(args.history))
        res["load_seconds"] = time.perf_counter() - t0
        res["seeded"] = {name: count(ctx, f"SELECT count(*) FROM {name}") for name in (
            "products", "customers", "stock", "orders", "order_lines", "drafts", "substitution_offers", "outbox")}
        say(kind, f"seeded in {res['load_seconds']:.1f} s: {res['seeded']}")

        say(kind, f"figure 1: {args.n} order.placed per kind ...")
        res["planning"] = figure_planning(ctx, cat, args.n, args.warmup)
        std_sub_orders = res["planning"].pop("orders")[("standard", "sub")]  # their offers, for figure 5

        per = args.n + args.warmup
        ensure_pending(ctx, cat, 4 * per + args.race)
        pending = pending_drafts(ctx)
        rnd = random.Random(args.seed)
        rnd.shuffle(pending)  # every batch gets the same mix of kinds (delay notices, offers; 1-3 lines)
        batches = {name: sorted(pending[k * per:(k + 1) * per]) for k, name in enumerate(
            ("approve", "reject", "http approve", "http reject"))}
        race_ids = sorted(pending[4 * per:4 * per + args.race])
        res["decision_mix"] = mix(ctx, [i for b in batches.values() for i in b])
        say(kind, f"figure 2: approve / reject {args.n} each in process and over HTTP ...")
        res["approve"] = decide_in_process(ctx, batches["approve"], args.warmup, "approve")
        res["reject"] = decide_in_process(ctx, batches["reject"], args.warmup, "reject")
        res["http"] = decide_http(url, {"approve": batches["http approve"], "reject": batches["http reject"]},
                                  args.warmup, work)
        say(kind, f"figure 3: {args.race} drafts, two approvers at once ...")
        res["race"] = figure_race(ctx, race_ids)
        say(kind, f"figure 5: accept {args.accept} substitution offers ...")
        res["accept"] = figure_accept(ctx, std_sub_orders, args.accept, args.warmup)
        say(kind, f"figure 4: compose 2 x {args.compose} drafts with the fake model ...")
        res["compose"] = figure_compose(ctx, cat, args.compose, args.warmup)
        res["final"] = {name: count(ctx, f"SELECT count(*) FROM {name}") for name in (
            "orders", "order_lines", "drafts", "substitution_offers", "outbox", "audit_log")}
    finally:
        ctx.engine.dispose()
        drop_database(url)
    return res


def mix(ctx: Any, ids: list[int]) -> dict[str, int]:
    from store import tables as t

    d = t.drafts
    with ctx.engine.connect() as conn:
        return {k: int(n) for k, n in conn.execute(select(d.c.kind, func.count()).where(d.c.id.in_(ids))
                                                   .group_by(d.c.kind))}


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def ms(v: float) -> str:
    return "-" if v != v else f"{v * 1000:,.2f}" if v < 0.01 else f"{v * 1000:,.1f}"


def us(v: float) -> str:
    return "-" if v != v else f"{v * 1e6:,.0f} µs"


def row(db: str, what: str, s: dict[str, Any], note: str, fmt: Callable[[float], str] = ms) -> list[str]:
    return [db, what, f"{s['n']:,}", fmt(s["p50"]), fmt(s["p99"]), fmt(s["max"]), f"{s['load']:.2f}", note]


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]], started: str, seconds: float) -> str:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    versions = ", ".join(f"{d} {package_version(d)}" for d in (
        "sqlalchemy", "psycopg", "fastapi", "uvicorn", "openai", "httpx2", "aiohttp", "requests", "jinja2"))
    lines = [
        f"# Drafts, approvals and substitutions (bench/drafts.py), {started}",
        "",
        f"Command: python bench/drafts.py --db {args.db} --n {args.n} --race {args.race} --compose {args.compose} "
        f"--accept {args.accept} --warmup {args.warmup} --history {args.history} --seed {args.seed}",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.1f} GB RAM, "
        f"{platform.platform()}; load average at start {', '.join(f'{x:.2f}' for x in args.load_at_start)}",
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version} (temp file, WAL); "
        f"PostgreSQL {pg_version(PG_ADMIN)} (127.0.0.1:5432, stock settings, fresh database per run); {versions}",
        f"Data per database: 4 warehouses, 400 products in 20 categories with attributes (60 out of stock with a "
        f"configured substitute in stock, 40 in categories with nothing in stock), 300 customers (60% standard, "
        f"25% gold, 15% platinum; en/en-GB/es), {args.history} earlier orders; default settings ([drafts] policy: "
        f"gold/platinum approve, others template; approval_above_value 1,000; [substitutes] on), customers on the "
        f"console channel, ops digest off; clock fixed at {NOW.isoformat()}.",
        "Latencies in ms (grounding in µs), nearest-rank percentiles after a warm-up of "
        f"{args.warmup} per measure; 'load' = 1-minute load average when that measure started.",
        "",
    ]
    rows = [["db", "measure", "n", "p50", "p99", "max", "load", "notes"]]
    for db, r in results.items():
        p = r["planning"]
        for tier, kind in VARIANTS:
            s = p[f"{tier}/{kind}"]
            made = (f"per event: {s['notices']:.2f} customer rows, {s['drafts']:.2f} drafts, {s['cards']:.2f} "
                    f"approval cards, {s['offers']:.2f} offers")
            rows.append(row(db, f"1 plan order.placed, {tier}, {VARIANT_LABEL[kind]}", {**s, "load": p["load"]},
                            made))
        m = ", ".join(f"{k} {v}" for k, v in sorted(r["decision_mix"].items()))
        rows.append(row(db, "2 approve (in process)", r["approve"], f"drafts of every batch: {m} (shuffled)"))
        rows.append(row(db, "2 reject (in process)", r["reject"], "reason given; offers in them withdrawn"))
        h = r["http"]
        rows.append(row(db, "2 POST /drafts/{id}/approve", h["approve"], "uvicorn child, keep-alive, 200"))
        rows.append(row(db, "2 POST /drafts/{id}/reject", h["reject"], "200"))
        rows.append(row(db, "2 POST approve, already decided", h["409"], "409 'already approved by api at ...'"))
        rc = r["race"]
        check = (f"CHECK {'ok' if rc['ok'] else 'FAILED'}: customer rows {rc['customer_rows']} for "
                 f"{args.race} drafts, one winner on {rc['one_winner']}, draft_approved audits {rc['audits']}"
                 + (f", odd outcomes {rc['n_odd']}: {rc['odd']}" if rc["n_odd"] else ""))
        rows.append(row(db, "3 race: the winner's approve", {**rc["won"], "load": rc["load"]}, check))
        rows.append(row(db, "3 race: the loser's AlreadyDecided", {**rc["lost"], "load": rc["load"]},
                        "from the same barrier as the winner"))
        c = r["compose"]
        b = c["batch"]
        src = ", ".join(f"{k} {v}" for k, v in sorted(c["sources"].items()))
        rows.append(row(db, "4 compose_due, one draft per call", c["per_draft"],
                        f"batched (20 per call): {b['drafts']} drafts in {b['seconds']:.2f} s = "
                        f"**{b['rate']:.0f} drafts/s** (load {b['load']:.2f}); outcome: {src}; "
                        f"{c['attempts']:.2f} model calls per draft"))
        for label in ("model", "template"):
            g = c["grounding"][label]
            rows.append(row(db, f"4 grounding.check, {label} text", {**g, "load": c["load_check"]},
                            f"{g['chars']:.0f} chars on average; {g['with_problems']} with problems", us))
        a = r["accept"]
        rows.append(row(db, "5 substitutions.accept", a,
                        f"{a['allocated_at_once']} of {a['n']} substitutes allocated at once; "
                        f"{a['closed']} offers found withdrawn"))
    lines.append(table(rows))
    lines += [""]
    for db, r in results.items():
        lines.append(f"{db}: seeded in {r['load_seconds']:.1f} s {r['seeded']}; at the end {r['final']}; "
                     f"server stopped in {r['http']['stopped'].get('seconds', 0):.1f} s")
    lines += ["", f"whole run {seconds:.0f} s; load average at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--n", type=int, default=300, help="events per planning kind, drafts per decision measure")
    ap.add_argument("--race", type=int, default=200, help="drafts two approvers race on")
    ap.add_argument("--compose", type=int, default=200, help="drafts per compose measure (two measures)")
    ap.add_argument("--accept", type=int, default=200, help="substitution offers accepted")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--history", type=int, default=400, help="earlier orders loaded before measuring")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    if min(args.n, args.race, args.compose, args.accept) < 1 or args.warmup < 0:
        ap.error("--n, --race, --compose and --accept must be at least 1")
    if args.accept + args.warmup > args.n:
        ap.error("--accept + --warmup must not exceed --n (the offers come from figure 1)")
    # No config file, no BACKORDER_* of the caller's: only what this bench sets (the server gets the same).
    for key in [k for k in os.environ if k.startswith("BACKORDER_") and k != "BACKORDER_BENCH_PG"]:
        del os.environ[key]
    os.environ["BACKORDER_CONFIG"] = os.devnull
    args.load_at_start = os.getloadavg()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-drafts-") as tmp:
        for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
            results[kind] = run_db(kind, args, Path(tmp))
    print(report(args, results, started, time.monotonic() - t0))
    failed = [db for db, r in results.items() if not r["race"]["ok"]]
    if failed:
        print(f"\nFAILED: two approvers at once did not give exactly one customer message per draft on "
              f"{', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
