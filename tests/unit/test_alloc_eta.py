from datetime import date, datetime, timedelta

from allocation.eta import days_late, project_etas
from allocation.model import InboundPO, Line
from allocation.policy import AllocationPolicy

T0 = datetime(2024, 1, 1, 9, 0)
TODAY = date(2024, 3, 1)
FIFO = AllocationPolicy("fifo", receiving_buffer_days=1)


def mk(line_id: str, qty: int, minutes: int = 0, sku: str = "A", **kw: object) -> Line:
    kw.setdefault("order_id", "o-" + line_id)
    return Line(line_id=line_id, sku=sku, qty=qty, placed_at=T0 + timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]


def po(po_id: str, qty: int, expected: date | None, sku: str = "A") -> InboundPO:
    return InboundPO(po_id=po_id, sku=sku, warehouse_id="W1", expected_at=expected, qty_open=qty)


def test_po_cover_then_lead_time() -> None:
    a, b, c = mk("a", 3, 0), mk("b", 3, 1), mk("c", 3, 2)
    pos = [po("P2", 2, date(2024, 3, 20)), po("P1", 4, date(2024, 3, 10)), po("P0", 9, None)]
    events = project_etas([c, a, b], pos, FIFO, TODAY, {"A": 30})
    assert (a.eta, a.eta_reason) == (date(2024, 3, 11), "po:P1")
    # b's last unit comes from P2: the line waits for the later PO.
    assert (b.eta, b.eta_reason) == (date(2024, 3, 21), "po:P2")
    assert (c.eta, c.eta_reason) == (TODAY + timedelta(days=30), "supplier_lead_time")
    assert [e.data["line_id"] for e in events] == ["a", "b", "c"]
    assert events[0].data["new_eta"] == "2024-03-11" and events[0].data["old_eta"] is None


def test_exact_cover_moves_to_next_po() -> None:
    a, b = mk("a", 2, 0), mk("b", 1, 1)
    project_etas([a, b], [po("P1", 2, date(2024, 3, 5)), po("P2", 5, date(2024, 3, 9))], FIFO, TODAY, {})
    assert (a.eta_reason, b.eta_reason) == ("po:P1", "po:P2")


def test_no_po_no_lead_time_gives_none_with_reason() -> None:
    line = mk("a", 1, eta=date(2024, 3, 3), eta_reason="po:OLD")
    events = project_etas([line], [], FIFO, TODAY, {"A": None})
    assert (line.eta, line.eta_reason) == (None, "no_inbound_po_and_no_lead_time")
    assert events[0].data["old_eta"] == "2024-03-03" and events[0].data["new_eta"] is None


def test_not_waiting_lines_lose_their_eta_and_unchanged_etas_emit_nothing() -> None:
    done = mk("done", 1, qty_allocated=1, eta=date(2024, 3, 5), eta_reason="po:P")
    waiting = mk("w", 1, promised_date=date(2024, 3, 5))
    pos = [po("P1", 1, date(2024, 3, 8))]
    events = project_etas([done, waiting], pos, FIFO, TODAY, {})
    assert done.eta is None and done.eta_reason is None
    assert {e.data["line_id"] for e in events} == {"done", "w"}
    assert next(e for e in events if e.data["line_id"] == "w").data["days_late"] == 4
    assert project_etas([done, waiting], pos, FIFO, TODAY, {}) == []


def test_overdue_po_counts_as_arriving_today_plus_buffer() -> None:
    line = mk("a", 1)
    project_etas(
        [line], [po("P1", 1, date(2024, 2, 1))], AllocationPolicy(receiving_buffer_days=2), TODAY, {}
    )
    assert line.eta == TODAY + timedelta(days=2)


def test_partially_allocated_line_only_needs_its_waiting_units() -> None:
    a, b = mk("a", 5, 0, qty_allocated=4), mk("b", 1, 1)
    project_etas([a, b], [po("P1", 2, date(2024, 3, 5))], FIFO, TODAY, {})
    assert (a.eta_reason, b.eta_reason) == ("po:P1", "po:P1")


def test_priority_order_decides_who_gets_the_first_po() -> None:
    std, plat = mk("std", 1, 0), mk("plat", 1, 5, tier="platinum")
    pos = [po("P1", 1, date(2024, 3, 5)), po("P2", 1, date(2024, 3, 9))]
    project_etas([std, plat], pos, AllocationPolicy("priority"), TODAY, {})
    assert (plat.eta_reason, std.eta_reason) == ("po:P1", "po:P2")


def test_days_late() -> None:
    line = mk("a", 1, promised_date=date(2024, 3, 1), eta=date(2024, 3, 4))
    assert days_late(line) == 3
    assert days_late(mk("b", 1, eta=date(2024, 3, 4))) is None
