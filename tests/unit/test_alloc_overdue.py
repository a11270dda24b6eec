from datetime import date, datetime

from allocation.model import Line
from allocation.overdue import find_overdue
from allocation.policy import AllocationPolicy

T0 = datetime(2024, 1, 1, 9, 0)
TODAY = date(2024, 3, 10)


def mk(line_id: str, sku: str = "A", **kw: object) -> Line:
    kw.setdefault("order_id", "o-" + line_id)
    kw.setdefault("qty", 1)
    return Line(line_id=line_id, sku=sku, placed_at=T0, **kw)  # type: ignore[arg-type]


def test_find_overdue_groups_per_sku_with_worst_severity_first() -> None:
    lines = [
        mk("a1", promised_date=date(2024, 3, 8), unit_price=10.0, qty=2),
        mk("a2", promised_date=date(2024, 3, 9), eta=date(2024, 3, 20)),
        mk("b1", sku="B", promised_date=date(2024, 3, 9), tier="platinum"),
        mk("future", promised_date=date(2024, 3, 10)),
        mk("filled", promised_date=date(2024, 3, 1), qty_allocated=1),
        mk("unpromised"),
    ]
    found = find_overdue(lines, TODAY, AllocationPolicy())
    assert [o.sku for o in found] == ["B", "A"]
    b, a = found
    assert b.severity == "critical" and b.max_days_late == 1
    assert [ln.line_id for ln in a.lines] == ["a1", "a2"]
    assert a.line_days_late == {"a1": 2, "a2": 11}  # a2's ETA is later than today
    assert a.line_severity == {"a1": "low", "a2": "high"}
    assert (a.severity, a.max_days_late, a.total_value, a.new_eta) == ("high", 11, 20.0, date(2024, 3, 20))


def test_nothing_overdue() -> None:
    assert find_overdue([mk("x", promised_date=TODAY)], TODAY, AllocationPolicy()) == []
