from datetime import datetime, timedelta

import pytest

from allocation.engine import allocate, cancel, line_status, release_excess, ship
from allocation.model import (
    ALLOCATED,
    BACKORDERED,
    CANCELLED,
    PARTIALLY_ALLOCATED,
    SHIPPED,
    Line,
    Move,
    Stock,
)
from allocation.policy import AllocationPolicy

T0 = datetime(2024, 1, 1, 9, 0)
FIFO = AllocationPolicy("fifo")


def mk(line_id: str, qty: int, minutes: int = 0, sku: str = "A", **kw: object) -> Line:
    kw.setdefault("order_id", "o-" + line_id)
    return Line(line_id=line_id, sku=sku, qty=qty, placed_at=T0 + timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]


def types(result: object) -> list[tuple[str, str]]:
    return [(e.type, e.data["line_id"]) for e in result.events]  # type: ignore[attr-defined]


def test_fifo_partial_allocation_and_backorder() -> None:
    a, b, c = mk("a", 3, 0), mk("b", 3, 1), mk("c", 3, 2)
    stock = Stock("A", "W1", on_hand=5)
    result = allocate([c, b, a], [stock], FIFO, new_line_ids={"a", "b", "c"})
    assert (a.qty_allocated, b.qty_allocated, c.qty_allocated) == (3, 2, 0)
    assert (a.status, b.status, c.status) == (ALLOCATED, PARTIALLY_ALLOCATED, BACKORDERED)
    assert stock.allocated == 5
    assert result.moves == [
        Move("allocate", "a", "o-a", "A", "W1", 3),
        Move("allocate", "b", "o-b", "A", "W1", 2),
    ]
    assert types(result) == [
        ("line_allocated", "a"),
        ("line_partially_allocated", "b"),
        ("line_backordered", "b"),
        ("line_backordered", "c"),
    ]
    backordered = [e for e in result.events if e.type == "line_backordered"]
    assert backordered[0].data == {
        "line_id": "b",
        "order_id": "o-b",
        "sku": "A",
        "qty": 3,
        "waiting": 1,
        "value": 0.0,
    }
    assert set(result.changed_lines) == {"a", "b"}  # c is new and untouched: the caller inserts it


def test_priority_policy_serves_platinum_first() -> None:
    std, plat = mk("std", 2, 0), mk("plat", 2, 60, tier="platinum")
    allocate([std, plat], [Stock("A", "W1", on_hand=2)], AllocationPolicy("priority"))
    assert (plat.qty_allocated, std.qty_allocated) == (2, 0)


def test_existing_allocations_are_kept_and_fill_resolves_backorder() -> None:
    early = mk("early", 2, 0)
    late = mk("late", 4, 1, qty_allocated=1, allocations={"W1": 1}, status=PARTIALLY_ALLOCATED)
    stock = Stock("A", "W1", on_hand=10, allocated=1)
    result = allocate([early, late], [stock], FIFO)
    assert late.allocations == {"W1": 4} and late.status == ALLOCATED
    assert stock.allocated == 6
    assert ("backorder_resolved", "late") in types(result)
    allocated_event = next(e for e in result.events if e.data["line_id"] == "late")
    assert allocated_event.data["warehouses"] == {"W1": 3}
    assert allocated_event.data["previous_status"] == PARTIALLY_ALLOCATED


def test_new_line_filled_at_once_is_not_a_resolved_backorder() -> None:
    line = mk("n", 1)
    result = allocate([line], [Stock("A", "W1", on_hand=1)], FIFO, new_line_ids=["n"])
    assert types(result) == [("line_allocated", "n")]


def test_cancelled_and_shipped_lines_are_ignored() -> None:
    gone = mk("gone", 5, 0, cancelled=True, status=CANCELLED)
    done = mk("done", 2, 0, qty_allocated=2, qty_shipped=2, status=SHIPPED)
    live = mk("live", 1, 5)
    allocate([gone, done, live], [Stock("A", "W1", on_hand=1)], FIFO)
    assert gone.qty_allocated == 0 and live.qty_allocated == 1


def test_region_warehouse_first_then_policy_order_then_id() -> None:
    policy = AllocationPolicy("fifo", warehouse_order=("W9",), warehouse_regions={"EU1": "eu", "US1": "us"})
    stocks = [Stock("A", w, on_hand=2) for w in ("W2", "W1", "W9", "US1", "EU1")]
    eu = mk("eu", 9, region="eu")
    allocate([eu], stocks, policy)
    assert list(eu.allocations.items()) == [("EU1", 2), ("W9", 2), ("US1", 2), ("W1", 2), ("W2", 1)]


def test_no_split_picks_first_warehouse_that_fills_whole_line() -> None:
    policy = AllocationPolicy("fifo", warehouse_order=("W1", "W2", "W3"), allow_split=False)
    stocks = [Stock("A", "W1", on_hand=2), Stock("A", "W2", on_hand=5), Stock("A", "W3", on_hand=5)]
    line = mk("l", 4)
    allocate([line], stocks, policy)
    assert line.allocations == {"W2": 4}


def test_no_split_partial_takes_largest_then_only_grows_there() -> None:
    policy = AllocationPolicy("fifo", warehouse_order=("W1", "W2"), allow_split=False)
    w1, w2 = Stock("A", "W1", on_hand=2), Stock("A", "W2", on_hand=3)
    line = mk("l", 6)
    allocate([line], [w1, w2], policy)
    assert line.allocations == {"W2": 3}
    w1.on_hand = 10  # W1 restocked, but the line already lives in W2
    allocate([line], [w1, w2], policy)
    assert line.allocations == {"W2": 3} and w1.allocated == 0
    w2.on_hand = 6
    allocate([line], [w1, w2], policy)
    assert line.allocations == {"W2": 6} and line.status == ALLOCATED


def test_ship_complete_order_is_skipped_without_blocking_later_lines() -> None:
    sc1 = mk("sc1", 2, 0, order_id="SC", ship_complete=True)
    sc2 = mk("sc2", 5, 0, sku="B", order_id="SC", ship_complete=True)
    later = mk("later", 2, 10)
    stocks = [Stock("A", "W1", on_hand=3), Stock("B", "W1", on_hand=4)]
    result = allocate([sc1, sc2, later], stocks, FIFO, new_line_ids={"sc1", "sc2", "later"})
    assert sc1.qty_allocated == 0 and sc2.qty_allocated == 0
    assert later.qty_allocated == 2
    assert types(result) == [
        ("line_allocated", "later"),
        ("line_backordered", "sc1"),
        ("line_backordered", "sc2"),
    ]


def test_ship_complete_order_filled_across_skus_when_possible() -> None:
    sc1 = mk("sc1", 2, 0, order_id="SC", ship_complete=True)
    sc2 = mk("sc2", 4, 0, sku="B", order_id="SC", ship_complete=True)
    later = mk("later", 2, 10)
    stocks = [Stock("A", "W1", on_hand=3), Stock("B", "W1", on_hand=4)]
    allocate([later, sc2, sc1], stocks, FIFO)
    assert (sc1.qty_allocated, sc2.qty_allocated, later.qty_allocated) == (2, 4, 1)


def test_ship_complete_counts_its_own_lines_competing_for_one_sku() -> None:
    a1 = mk("a1", 2, 0, order_id="SC", ship_complete=True)
    a2 = mk("a2", 2, 0, order_id="SC", ship_complete=True)
    allocate([a1, a2], [Stock("A", "W1", on_hand=3)], FIFO)
    assert a1.qty_allocated == 0 and a2.qty_allocated == 0


def test_release_excess_takes_from_lowest_priority_first() -> None:
    first, second = mk("first", 3, 0), mk("second", 3, 5)
    stock = Stock("A", "W1", on_hand=6)
    allocate([first, second], [stock], FIFO)
    stock.on_hand = 4
    result = release_excess([first, second], [stock], FIFO)
    assert (first.qty_allocated, second.qty_allocated) == (3, 1)
    assert stock.allocated == 4 and second.status == PARTIALLY_ALLOCATED
    assert result.moves == [Move("release", "second", "o-second", "A", "W1", 2)]
    assert result.events[0].type == "allocation_released" and result.events[0].data["qty"] == 2


def test_release_excess_ship_complete_loses_everything_then_reallocates_elsewhere() -> None:
    sc1 = mk("sc1", 2, 5, order_id="SC", ship_complete=True)
    sc2 = mk("sc2", 1, 5, sku="B", order_id="SC", ship_complete=True)
    first = mk("first", 2, 0)
    a1, b1, a2 = Stock("A", "W1", on_hand=4), Stock("B", "W1", on_hand=1), Stock("A", "W2", on_hand=0)
    pool, stocks = [first, sc1, sc2], [a1, b1, a2]
    allocate(pool, stocks, FIFO)
    assert sc1.allocations == {"W1": 2} and sc2.allocations == {"W1": 1}
    a1.on_hand = 3
    release_excess(pool, stocks, FIFO)
    assert sc1.qty_allocated == 0 and sc2.qty_allocated == 0
    assert (a1.allocated, b1.allocated) == (2, 0)
    a2.on_hand = 5
    allocate(pool, stocks, FIFO)
    assert sc1.qty_allocated == 2 and sc2.allocations == {"W1": 1}


def test_cancel_releases_and_next_waiting_line_gets_the_units() -> None:
    a, b = mk("a", 2, 0), mk("b", 2, 1)
    stock = Stock("A", "W1", on_hand=2)
    allocate([a, b], [stock], FIFO)
    result = cancel([a, b], [stock], ["a"])
    assert a.status == CANCELLED and a.allocations == {} and a.qty_allocated == 0
    assert stock.allocated == 0
    assert result.events[0].type == "line_cancelled" and result.events[0].data["released"] == {"W1": 2}
    allocate([a, b], [stock], FIFO)
    assert b.qty_allocated == 2 and stock.allocated == 2
    assert cancel([a, b], [stock], ["a"]).events == []


def test_ship_moves_active_units_and_never_twice() -> None:
    line = mk("l", 3)
    stock = Stock("A", "W1", on_hand=2)
    allocate([line], [stock], FIFO)
    result = ship([line], [stock], ["l"])
    assert (stock.on_hand, stock.allocated, line.qty_shipped, line.allocations) == (0, 0, 2, {})
    assert line.status == PARTIALLY_ALLOCATED
    assert result.events[0].type == "line_shipped" and result.events[0].data["qty"] == 2
    assert ship([line], [stock], ["l"]).events == []
    stock.on_hand = 5
    allocate([line], [stock], FIFO)
    ship([line], [stock], ["l"])
    assert line.status == SHIPPED and line.qty_shipped == 3 and stock.on_hand == 4


def test_missing_stock_row_is_reported() -> None:
    line = mk("l", 1, allocations={"W1": 1}, qty_allocated=1)
    with pytest.raises(ValueError, match="no stock row"):
        ship([line], [], ["l"])


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"cancelled": True}, CANCELLED),
        ({"qty_allocated": 2, "qty_shipped": 2}, SHIPPED),
        ({"qty_allocated": 2}, ALLOCATED),
        ({"qty_allocated": 1}, PARTIALLY_ALLOCATED),
        ({}, BACKORDERED),
    ],
)
def test_line_status(fields: dict[str, object], status: str) -> None:
    assert line_status(mk("l", 2, **fields)) == status
