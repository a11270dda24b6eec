"""Properties of the inbox + service layer under random event streams (SQLite, one file per example).

(a) the store's invariants hold after every applied event;
(b) replaying the whole stream changes nothing (every event is a duplicate);
(c) the final state is the same whether the events arrive in one batch, one by one, or in
    random chunks with later duplicate copies mixed in.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from backorder.config import load_settings
from services.context import Context
from services.inbox import apply_next, drain, store_events
from store import tables as t
from store.db import make_engine, upgrade
from tests.invariants import check_invariants

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SKUS = ("A", "B", "C")
WAREHOUSES = (("W1", "north"), ("W2", "south"))
CUSTOMERS = (("C1", "north", "standard"), ("C2", "south", "gold"), ("C3", None, "platinum"))


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """One upgraded SQLite file; each example works on a copy."""
    with pytest.MonkeyPatch.context() as mp:
        workdir = Path(tempfile.mkdtemp(prefix="replay-props-"))
        mp.chdir(workdir)  # no stray backorder.toml
        for key in [k for k in os.environ if k.startswith("BACKORDER_")]:
            mp.delenv(key)
        path = workdir / "template.db"
        upgrade(f"sqlite:///{path}")
        yield path
        shutil.rmtree(workdir, ignore_errors=True)


def ts(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def envelope(n: int, type_: str, data: dict[str, Any], minutes: int | None = None) -> dict[str, Any]:
    return {"event_id": f"e{n}", "type": type_, "occurred_at": ts(n if minutes is None else minutes),
            "source": "prop", "data": data}


def master_data() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for wh, region in WAREHOUSES:
        out.append(("warehouse.upserted", {"warehouse_id": wh, "name": wh, "region": region}))
    out.append(("supplier.upserted", {"supplier_id": "S1", "name": "S1", "lead_time_days": 7}))
    for i, sku in enumerate(SKUS):
        out.append(("product.upserted", {"sku": sku, "name": sku, "price": 5 + i, "supplier_id": "S1",
                                         "lead_time_days": None if i == 0 else 3 * i}))
    for cid, region, tier in CUSTOMERS:
        data: dict[str, Any] = {"customer_id": cid, "name": cid, "tier": tier}
        if region:
            data["region"] = region
        out.append(("customer.upserted", data))
    return out


@st.composite
def operation(draw: st.DrawFn, n_orders: int) -> tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], int]:
    kind = draw(st.sampled_from(["place", "place", "place", "receive", "receive", "adjust", "adjust",
                                 "cancel", "ship", "po"]))
    sku = draw(st.sampled_from(SKUS))
    wh = draw(st.sampled_from([w for w, _ in WAREHOUSES] + ["W9"]))  # W9: never declared -> parked
    order_id = f"O{draw(st.integers(0, max(n_orders, 1)))}"  # may name an order not placed (yet)
    if kind == "place":
        skus = draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=3, unique=True))
        return ("order.placed", {
            "customer_id": draw(st.sampled_from(["C1", "C2", "C3", "C1", "C9"])),
            "rush": draw(st.booleans()), "ship_complete": draw(st.booleans()),
            "promised_date": draw(st.sampled_from([None, "2026-03-03", "2026-03-09"])),
            "lines": [{"line_id": f"L{i}", "sku": s, "qty": draw(st.integers(1, 4)), "unit_price": 10}
                      for i, s in enumerate(skus)]})
    if kind == "receive":
        return ("inventory.received", {"sku": sku, "warehouse_id": wh, "qty": draw(st.integers(1, 5))})
    if kind == "adjust":
        # occurred_at drawn freely, so some counts arrive after a newer one (stale, ignored)
        return ("inventory.adjusted", {"sku": sku, "warehouse_id": wh, "on_hand": draw(st.integers(0, 6))},
                draw(st.integers(0, 120)))
    if kind == "cancel":
        data: dict[str, Any] = {"order_id": order_id}
        if draw(st.booleans()):
            data["line_ids"] = draw(st.lists(st.sampled_from(["L0", "L1", "L2"]), min_size=1, max_size=2,
                                             unique=True))
        return ("order.cancelled", data)
    if kind == "ship":
        return ("shipment.updated", {"order_id": order_id})
    return ("po.updated", {"po_id": draw(st.sampled_from(["P1", "P2"])), "supplier_id": "S1", "warehouse_id": "W1",
                           "expected_at": draw(st.sampled_from(["2026-02-27", "2026-03-05", "2026-03-12"])),
                           "lines": [{"sku": sku, "qty": draw(st.integers(1, 8))}]})


@dataclass
class Scenario:
    events: list[dict[str, Any]]
    policy: dict[str, Any]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    master = master_data()
    # Some master data arrives late (after orders that need it), exercising dead letters + retry.
    late = draw(st.lists(st.sampled_from(range(len(master))), max_size=3, unique=True))
    early = [m for i, m in enumerate(master) if i not in late]
    ops: list[Any] = []
    placed = 0
    for _ in range(draw(st.integers(4, 22))):
        op = draw(operation(placed))
        if op[0] == "order.placed":
            op[1]["order_id"] = f"O{placed}"
            placed += 1
        ops.append(op)
    for i in late:
        ops.insert(draw(st.integers(0, len(ops))), master[i])
    events: list[dict[str, Any]] = []
    for kind, data in early:
        events.append(envelope(len(events), kind, data))
    for op in ops:
        minutes = op[2] if len(op) == 3 else None
        events.append(envelope(len(events), op[0], op[1], minutes))
    policy = draw(st.sampled_from([
        {}, {"policy": "priority"}, {"allow_split": False}, {"warehouse_order": ["W2", "W1"]},
    ]))
    return Scenario(events, policy)


def fresh_context(template: Path, policy: dict[str, Any]) -> tuple[Context, Path]:
    workdir = Path(tempfile.mkdtemp(prefix="replay-ex-"))
    path = workdir / "db.sqlite"
    shutil.copy(template, path)
    url = f"sqlite:///{path}"
    ctx = Context(engine=make_engine(url), settings=load_settings(database_url=url, allocation=policy),
                  clock=lambda: NOW)
    return ctx, workdir


def dispose(ctx: Context, workdir: Path) -> None:
    ctx.engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)


def snapshot(ctx: Context) -> dict[str, Any]:
    l, s, a, i, d, o = t.order_lines, t.stock, t.allocations, t.inbox, t.dead_letters, t.orders
    with ctx.engine.connect() as conn:
        return {
            "orders": conn.execute(select(o.c.order_id, o.c.status).order_by(o.c.order_id)).all(),
            "lines": conn.execute(select(l.c.order_id, l.c.line_id, l.c.sku, l.c.qty, l.c.qty_allocated,
                                         l.c.qty_shipped, l.c.status, l.c.eta, l.c.eta_reason)
                                  .order_by(l.c.order_id, l.c.line_id)).all(),
            "stock": conn.execute(select(s.c.sku, s.c.warehouse_id, s.c.on_hand, s.c.allocated, s.c.counted_at)
                                  .order_by(s.c.sku, s.c.warehouse_id)).all(),
            "allocations": conn.execute(
                select(l.c.order_id, l.c.line_id, a.c.warehouse_id, a.c.status, func.sum(a.c.qty))
                .join(l, l.c.id == a.c.line_pk).where(a.c.status != "released")
                .group_by(l.c.order_id, l.c.line_id, a.c.warehouse_id, a.c.status)
                .order_by(l.c.order_id, l.c.line_id, a.c.warehouse_id, a.c.status)).all(),
            "inbox": conn.execute(select(i.c.event_id, i.c.status, i.c.note).order_by(i.c.event_id)).all(),
            "dead_letters": conn.execute(select(i.c.event_id, d.c.status, d.c.reason, d.c.attempts)
                                         .join(i, i.c.id == d.c.inbox_id).order_by(i.c.event_id)).all(),
            "domain_events": conn.execute(select(t.domain_events.c.type, t.domain_events.c.cause,
                                                 t.domain_events.c.data).order_by(t.domain_events.c.id)).all(),
            "audit": conn.execute(select(t.audit_log.c.entity, t.audit_log.c.entity_id, t.audit_log.c.action,
                                         t.audit_log.c.reason).order_by(t.audit_log.c.id)).all(),
        }


def no_pending(ctx: Context) -> None:
    with ctx.engine.connect() as conn:
        pending = conn.execute(select(func.count()).select_from(t.inbox).where(t.inbox.c.status == "pending"))
        assert pending.scalar_one() == 0


def run_batch_checking_each_step(ctx: Context, events: list[dict[str, Any]]) -> None:
    outcomes, ids = store_events(ctx, events)
    assert outcomes == ["accepted"] * len(events) and len(ids) == len(events)
    steps = 0
    while (applied := apply_next(ctx)) is not None:
        steps += 1
        assert steps <= 10 * len(events), "the inbox never empties"
        with ctx.engine.connect() as conn:
            check_invariants(conn, f"after inbox event {applied}")
    no_pending(ctx)


PROPS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])


@PROPS
@given(scenario=scenarios())
def test_invariants_hold_after_every_event_and_replay_changes_nothing(template: Path, scenario: Scenario) -> None:
    ctx, workdir = fresh_context(template, scenario.policy)
    try:
        run_batch_checking_each_step(ctx, scenario.events)
        before = snapshot(ctx)
        outcomes, ids = store_events(ctx, scenario.events)
        assert outcomes == ["duplicate"] * len(scenario.events) and ids == []
        assert drain(ctx) == 0
        assert snapshot(ctx) == before
    finally:
        dispose(ctx, workdir)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[Scenario, list[list[dict[str, Any]]]]:
    """A scenario plus a delivery of it: later duplicate copies mixed in, cut into random chunks."""
    scenario = draw(scenarios())
    stream = list(scenario.events)
    for _ in range(draw(st.integers(0, 8))):
        original = draw(st.integers(0, len(scenario.events) - 1))
        first = stream.index(scenario.events[original])
        stream.insert(draw(st.integers(first + 1, len(stream))), scenario.events[original])
    cuts = sorted(draw(st.lists(st.integers(1, len(stream) - 1), max_size=6, unique=True))) if len(stream) > 1 else []
    bounds = [0, *cuts, len(stream)]
    return scenario, [stream[a:b] for a, b in pairwise(bounds)]


@PROPS
@given(delivery=deliveries())
def test_final_state_does_not_depend_on_batching_or_duplicates(
    template: Path, delivery: tuple[Scenario, list[list[dict[str, Any]]]]
) -> None:
    scenario, chunks = delivery
    states = []
    for mode in ("batch", "one_by_one", "chunks_with_duplicates"):
        ctx, workdir = fresh_context(template, scenario.policy)
        try:
            if mode == "batch":
                store_events(ctx, scenario.events)
                drain(ctx)
            elif mode == "one_by_one":
                for e in scenario.events:
                    assert store_events(ctx, [e])[0] == ["accepted"]
                    drain(ctx)
            else:
                seen: set[str] = set()
                for chunk in chunks:
                    outcomes, _ids = store_events(ctx, chunk)
                    for e, outcome in zip(chunk, outcomes, strict=True):
                        assert outcome == ("duplicate" if e["event_id"] in seen else "accepted")
                        seen.add(e["event_id"])
                    drain(ctx)
            no_pending(ctx)
            with ctx.engine.connect() as conn:
                check_invariants(conn, mode)
            states.append(snapshot(ctx))
        finally:
            dispose(ctx, workdir)
    assert states[1] == states[0], "one by one differs from one batch"
    assert states[2] == states[0], "chunked delivery with duplicates differs from one batch"
