from datetime import date, datetime, timedelta

from allocation.model import Line
from allocation.ordering import order_values, priority_sort_key, sort_key_for
from allocation.policy import AllocationPolicy

T0 = datetime(2024, 1, 1, 9, 0)


def mk(line_id: str, minutes: int = 0, **kw: object) -> Line:
    kw.setdefault("order_id", "o-" + line_id)
    return Line(line_id=line_id, sku="A", qty=1, placed_at=T0 + timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]


def ids(lines: list[Line]) -> list[str]:
    return [ln.line_id for ln in lines]


def test_fifo_orders_by_placed_at_then_ids() -> None:
    lines = [mk("c", 5), mk("b", 0, order_id="o2"), mk("a", 0, order_id="o2"), mk("z", 0, order_id="o1")]
    key = priority_sort_key(AllocationPolicy("fifo"))
    assert ids(sorted(lines, key=key)) == ["z", "a", "b", "c"]


def test_fifo_policy_ignores_priority_fields() -> None:
    lines = [mk("late", 10, tier="platinum", rush=True), mk("early", 0)]
    assert ids(sorted(lines, key=priority_sort_key(AllocationPolicy("fifo")))) == ["early", "late"]


def test_default_priority_tier_then_rush_then_promise_then_fifo() -> None:
    lines = [
        mk("std", 0),
        mk("gold", 9, tier="gold"),
        mk("plat", 10, tier="platinum"),
        mk("std-rush", 20, rush=True),
        mk("std-promised", 30, promised_date=date(2024, 2, 1)),
        mk("std-promised-earlier", 40, promised_date=date(2024, 1, 15)),
    ]
    key = priority_sort_key(AllocationPolicy("priority"))
    assert ids(sorted(lines, key=key)) == [
        "plat",
        "gold",
        "std-rush",
        "std-promised-earlier",
        "std-promised",
        "std",
    ]


def test_order_value_uses_whole_order_total() -> None:
    big = [mk("b1", 5, order_id="big", unit_price=10.0), mk("b2", 5, order_id="big", unit_price=10.0)]
    small = [mk("s1", 0, order_id="small", unit_price=15.0)]
    pool = big + small
    assert order_values(pool) == {"big": 20.0, "small": 15.0}
    policy = AllocationPolicy("priority", priority_key=("order_value",))
    assert ids(sorted(pool, key=sort_key_for(pool, policy))) == ["b1", "b2", "s1"]
    line_policy = AllocationPolicy("priority", priority_key=("line_value",))
    assert ids(sorted(pool, key=sort_key_for(pool, line_policy)))[0] == "s1"


def test_ties_break_deterministically_whatever_the_input_order() -> None:
    lines = [mk(f"l{i}", 0, order_id="o") for i in range(10)]
    key = priority_sort_key(AllocationPolicy("priority"))
    assert ids(sorted(lines, key=key)) == ids(sorted(reversed(lines), key=key))
