"""allocation/reorder.py: levels, transfers before purchases, and properties over random positions."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.reorder import (
    PURCHASE,
    TRANSFER,
    Item,
    Override,
    Params,
    Position,
    home_warehouse,
    levels,
    suggest,
)
from backorder.config import load_settings

TODAY = date(2026, 3, 2)
P = Params(today=TODAY, demand_window_days=28, safety_days=7, default_lead_time_days=14, transfer_days=2)


def test_levels_cover_lead_time_and_safety_days_at_recent_demand() -> None:
    item = Item("A", (Position("W1", on_hand=50, allocated=5, waiting=3, demand=56),), lead_time_days=21)
    lv = levels(item, item.positions[0], P)
    # 56 units over 28 days = 2/day; cover (21 + 7) days = 56.
    assert (lv.point, lv.qty, lv.projected) == (56, 56, 42)


def test_inbound_counts_only_within_the_lead_time() -> None:
    pos = Position("W1", on_hand=10, inbound=((TODAY + timedelta(days=14), 5), (TODAY + timedelta(days=15), 7),
                                             (None, 100)))
    assert levels(Item("A", (pos,)), pos, P).projected == 15


def test_overrides_and_master_data_win_over_demand() -> None:
    pos = Position("W1", on_hand=0, demand=28)
    item = Item("A", (pos,), reorder_point=4, supplier_id="S1")
    assert levels(item, pos, P).point == 4
    lv = levels(item, pos, P, Override(reorder_point=9, reorder_qty=30))
    assert (lv.point, lv.qty) == (9, 30)
    [s] = suggest([item], P, {"A": Override(reorder_point=9, reorder_qty=30, supplier_id="S2")})
    assert (s.kind, s.qty, s.supplier_id, s.expected_at) == (PURCHASE, 30, "S2", TODAY + timedelta(days=14))


def test_purchase_when_below_point_and_no_surplus() -> None:
    item = Item("A", (Position("W1", on_hand=2, demand=28), Position("W2", on_hand=3, demand=28)),
                supplier_id="S1", lead_time_days=7)
    got = suggest([item], P)
    # point = ceil(1/day * 14 days) = 14 in both; W1 is shorter, so it comes first.
    assert [(s.kind, s.warehouse_id, s.qty) for s in got] == [(PURCHASE, "W1", 14), (PURCHASE, "W2", 14)]
    assert got[0].expected_at == TODAY + timedelta(days=7) and got[0].supplier_id == "S1"


def test_transfer_first_from_the_warehouse_with_most_surplus() -> None:
    item = Item("A", (Position("W1", on_hand=0, waiting=4, demand=28),
                      Position("W2", on_hand=40, demand=0),
                      Position("W3", on_hand=100, allocated=10, demand=28)), lead_time_days=14)
    [t] = suggest([item], P)
    # W1: point 21, projected -4, wants max(21, 25) = 25; W3 has 90 free - 21 = 69 surplus, W2 40 - 0.
    assert (t.kind, t.from_warehouse_id, t.warehouse_id, t.qty) == (TRANSFER, "W3", "W1", 25)
    assert t.expected_at == TODAY + timedelta(days=2)


def test_partial_transfer_then_purchase_of_the_rest() -> None:
    item = Item("A", (Position("W1", on_hand=0, demand=28), Position("W2", on_hand=25, demand=28)),
                supplier_id="S1", lead_time_days=14)
    got = suggest([item], P)
    assert [(s.kind, s.qty) for s in got] == [(TRANSFER, 4), (PURCHASE, 17)]


def test_transfer_first_off_and_skips() -> None:
    item = Item("A", (Position("W1", on_hand=0, demand=28), Position("W2", on_hand=100)), lead_time_days=14)
    off = Params(today=TODAY, transfer_first=False)
    assert [s.kind for s in suggest([item], off)] == [PURCHASE]
    assert [s.kind for s in suggest([item], P, skip=[(TRANSFER, "A", "W1")])] == [PURCHASE]
    assert suggest([item], P, skip=[(TRANSFER, "A", "W1"), (PURCHASE, "A", "W1")]) == []


def test_approved_transfers_out_are_not_lent_twice() -> None:
    item = Item("A", (Position("W1", on_hand=0, demand=28), Position("W2", on_hand=30, committed_out=30)),
                lead_time_days=14)
    assert [s.kind for s in suggest([item], P)] == [PURCHASE]


def test_home_warehouse() -> None:
    regions = {"N1": "north", "N2": "north", "S1": "south"}
    every = ["N1", "N2", "S1"]
    assert home_warehouse("north", ["N2", "S1"], regions, [], every) == "N2"
    assert home_warehouse("east", ["N2", "S1"], regions, ["S1"], every) == "S1"
    assert home_warehouse(None, ["S1", "N2"], regions, [], every) == "N2"
    assert home_warehouse("north", [], regions, [], every) == "N1"
    assert home_warehouse(None, [], regions, ["S1"], every) == "S1"
    assert home_warehouse(None, [], {}, [], []) is None


positions = st.builds(
    Position,
    warehouse_id=st.sampled_from(["W1", "W2", "W3", "W4"]),
    on_hand=st.integers(0, 200), allocated=st.integers(0, 50), waiting=st.integers(0, 80),
    demand=st.integers(0, 300), committed_out=st.integers(0, 20),
    inbound=st.lists(st.tuples(st.one_of(st.none(), st.dates(TODAY, TODAY + timedelta(days=60))),
                               st.integers(1, 50)), max_size=3).map(tuple),
)
items = st.builds(
    Item, sku=st.just("A"),
    positions=st.lists(positions, min_size=1, max_size=4, unique_by=lambda p: p.warehouse_id).map(tuple),
    lead_time_days=st.one_of(st.none(), st.integers(0, 60)), reorder_point=st.one_of(st.none(), st.integers(0, 100)),
)
overrides = st.one_of(st.none(), st.builds(Override, reorder_point=st.one_of(st.none(), st.integers(0, 100)),
                                           reorder_qty=st.one_of(st.none(), st.integers(1, 100))))
params = st.builds(Params, today=st.just(TODAY), demand_window_days=st.integers(1, 90), safety_days=st.integers(0, 30),
                   transfer_first=st.booleans())


@settings(max_examples=300, deadline=None)
@given(item=items, p=params, ov=overrides)
def test_properties(item: Item, p: Params, ov: Override | None) -> None:
    got = suggest([item], p, {"A": ov} if ov else {})
    lv = {pos.warehouse_id: levels(item, pos, p, ov) for pos in item.positions}
    free = {pos.warehouse_id: pos.free() for pos in item.positions}
    taken: dict[str, int] = defaultdict(int)
    added: dict[str, int] = defaultdict(int)
    for s in got:
        assert s.qty > 0
        # No suggestion for a warehouse at or above its point.
        assert lv[s.warehouse_id].projected < lv[s.warehouse_id].point
        added[s.warehouse_id] += s.qty
        if s.kind == TRANSFER:
            assert p.transfer_first and s.from_warehouse_id != s.warehouse_id
            taken[s.from_warehouse_id or ""] += s.qty
    # A transfer never takes a source below its own reorder point (nor lends units it does not have).
    for w, qty in taken.items():
        assert free[w] - qty >= lv[w].point
        assert w not in added  # a source is never itself short
    # Every warehouse below its point is brought back to it (at least).
    for w, level in lv.items():
        if level.projected < level.point:
            assert level.projected + added[w] >= level.point
        else:
            assert added[w] == 0


def test_reorder_settings_name_the_bad_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("BACKORDER_")]:
        monkeypatch.delenv(key)
    s = load_settings(reorder={"overrides": {"KTL-200": {"reorder_point": 40, "supplier": "ACME"}}})
    assert s.reorder.overrides["KTL-200"].reorder_point == 40 and s.reorder.transfer_first
    for bad, named in [({"overrides": {"KTL-200": {"reorder_pt": 4}}}, "reorder.overrides.KTL-200.reorder_pt"),
                       ({"overrides": {"KTL-200": {"reorder_qty": 0}}}, "reorder.overrides.KTL-200.reorder_qty"),
                       ({"overrides": {" ": {"reorder_qty": 3}}}, "reorder.overrides"),
                       ({"demand_window_days": 0}, "reorder.demand_window_days")]:
        with pytest.raises(ValueError, match=re.escape(named)):
            load_settings(reorder=bad)
