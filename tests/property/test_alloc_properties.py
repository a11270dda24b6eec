"""Invariants of the allocation engine under random lines, stocks and operation sequences."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.engine import allocate, cancel, line_status, release_excess, ship
from allocation.model import TIERS, Line, Move, Stock
from allocation.policy import AllocationPolicy

SKUS = ("A", "B")
WAREHOUSES = ("W1", "W2", "W3")
T0 = datetime(2024, 1, 1)


@dataclass
class Scenario:
    lines: list[Line]
    stocks: list[Stock]
    policy: AllocationPolicy
    ops: list[tuple[Any, ...]]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n_orders = draw(st.integers(1, 8))
    lines: list[Line] = []
    for o in range(n_orders):
        ship_complete = draw(st.booleans())
        tier = draw(st.sampled_from(TIERS))
        region = draw(st.sampled_from([None, "eu", "us"]))
        placed = T0 + timedelta(minutes=draw(st.integers(0, 5)))
        for i in range(draw(st.integers(1, 3))):
            lines.append(
                Line(
                    line_id=f"o{o}-{i}",
                    order_id=f"o{o}",
                    sku=draw(st.sampled_from(SKUS)),
                    qty=draw(st.integers(1, 6)),
                    placed_at=placed,
                    tier=tier,
                    rush=draw(st.booleans()),
                    ship_complete=ship_complete,
                    region=region,
                    unit_price=float(draw(st.integers(0, 50))),
                )
            )
    stocks = [Stock(s, w, on_hand=draw(st.integers(0, 8))) for s in SKUS for w in WAREHOUSES]
    policy = AllocationPolicy(
        name=draw(st.sampled_from(["fifo", "priority"])),
        priority_key=draw(
            st.sampled_from([("tier", "rush", "promised_date"), ("order_value", "line_value")])
        ),
        warehouse_order=tuple(draw(st.permutations(WAREHOUSES))[:2]),
        warehouse_regions={"W1": "eu", "W2": "us"},
        allow_split=draw(st.booleans()),
    )
    line_ids = [ln.line_id for ln in lines]
    op = st.one_of(
        st.tuples(st.just("adjust"), st.integers(0, len(stocks) - 1), st.integers(0, 8)),
        st.tuples(st.just("cancel"), st.sampled_from(line_ids)),
        st.tuples(st.just("ship"), st.sampled_from(line_ids)),
    )
    return Scenario(lines, stocks, policy, draw(st.lists(op, max_size=8)))


def run(sc: Scenario, reverse: bool = False) -> tuple[list[Move], list[str]]:
    """Apply the scenario (allocate first, then each op), checking invariants after each."""
    lines = list(reversed(sc.lines)) if reverse else sc.lines
    stocks, policy = sc.stocks, sc.policy
    moves = allocate(lines, stocks, policy, new_line_ids={ln.line_id for ln in lines}).moves
    check(lines, stocks, policy, after_allocate=True)
    for op in sc.ops:
        if op[0] == "adjust":
            stocks[op[1]].on_hand = max(op[2], 0)
            moves += release_excess(lines, stocks, policy).moves
        elif op[0] == "cancel":
            moves += cancel(lines, stocks, [op[1]]).moves
        else:
            moves += ship(lines, stocks, [op[1]]).moves
        check(lines, stocks, policy, after_allocate=False)
        moves += allocate(lines, stocks, policy).moves
        check(lines, stocks, policy, after_allocate=True)
    state = [
        f"{ln.line_id}:{ln.qty_allocated}:{ln.qty_shipped}:{sorted(ln.allocations.items())}" for ln in lines
    ]
    return moves, sorted(state)


def check(lines: list[Line], stocks: list[Stock], policy: AllocationPolicy, after_allocate: bool) -> None:
    active: dict[tuple[str, str], int] = {}
    for ln in lines:
        assert 0 <= ln.qty_shipped <= ln.qty_allocated <= ln.qty
        assert all(q > 0 for q in ln.allocations.values())
        assert sum(ln.allocations.values()) == ln.qty_allocated - ln.qty_shipped
        assert ln.status == line_status(ln) or (ln.status == "backordered" and ln.qty_allocated == 0)
        if not policy.allow_split:
            assert len(ln.allocations) <= 1
        if ln.ship_complete and not ln.cancelled:
            assert ln.qty_allocated in (0, ln.qty)  # never a partial parcel
        for wh, q in ln.allocations.items():
            active[(ln.sku, wh)] = active.get((ln.sku, wh), 0) + q
    for s in stocks:
        assert 0 <= s.allocated <= s.on_hand
        assert active.get((s.sku, s.warehouse_id), 0) == s.allocated
    if after_allocate:
        # Work-conserving: a waiting non-ship-complete line means its stock ran out.
        avail = {(s.sku, s.warehouse_id): s.available for s in stocks}
        for ln in lines:
            if ln.waiting and not ln.ship_complete:
                if policy.allow_split or not ln.allocations:
                    assert all(avail[(ln.sku, w)] == 0 for w in WAREHOUSES)
                else:
                    assert all(avail[(ln.sku, w)] == 0 for w in ln.allocations)


@settings(max_examples=200, deadline=None, database=None)
@given(scenarios())
def test_invariants_hold_and_runs_are_deterministic(sc: Scenario) -> None:
    first = copy.deepcopy(sc)
    moves, state = run(first)
    again_moves, again_state = run(copy.deepcopy(sc))
    assert (moves, state) == (again_moves, again_state)
    reversed_moves, reversed_state = run(copy.deepcopy(sc), reverse=True)
    assert (moves, state) == (reversed_moves, reversed_state)


@settings(max_examples=200, deadline=None, database=None)
@given(scenarios())
def test_allocation_never_exceeds_supply(sc: Scenario) -> None:
    supply = {(s.sku, s.warehouse_id): s.on_hand for s in sc.stocks}
    allocate(sc.lines, sc.stocks, sc.policy)
    for s in sc.stocks:
        assert s.allocated <= supply[(s.sku, s.warehouse_id)]
    per_sku: dict[str, int] = {}
    for ln in sc.lines:
        per_sku[ln.sku] = per_sku.get(ln.sku, 0) + ln.qty_allocated
    for sku, total in per_sku.items():
        assert total <= sum(q for (s, _), q in supply.items() if s == sku)
