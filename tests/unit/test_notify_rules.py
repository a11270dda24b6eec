from __future__ import annotations

from notifiers.rules import LineFacts, RuleConfig, Segment, excluded, notices_for, still_applies


def line(pk: int, order: str = "SO-1", status: str = "backordered", qty: int = 5, allocated: int = 0,
         price: float = 10.0, eta: str | None = None, waited: bool = True) -> LineFacts:
    return LineFacts(line_pk=pk, order_id=order, line_id=f"L{pk}", customer_id="C1", sku=f"SKU-{pk}",
                     name=f"Thing {pk}", qty=qty, qty_allocated=allocated, qty_shipped=0, status=status, eta=eta,
                     eta_reason=None, unit_price=price, waited=waited)


def kinds(notices: list) -> list[tuple[str, str | None, list[int]]]:
    return sorted((n.kind, n.order_id, sorted(n.line_pks)) for n in notices)


def test_new_backorders_of_one_order_make_one_notice_and_their_first_eta_is_folded_in() -> None:
    lines = {1: line(1), 2: line(2), 3: line(3, order="SO-2")}
    events = [("line_backordered", {"line_pk": 1}), ("line_backordered", {"line_pk": 2}),
              ("line_backordered", {"line_pk": 3}),
              ("eta_changed", {"line_pk": 1, "old_eta": None, "new_eta": "2026-03-10"})]
    assert kinds(notices_for(events, lines, RuleConfig())) == [
        ("backorder_created", "SO-1", [1, 2]), ("backorder_created", "SO-2", [3])]


def test_eta_change_needs_to_move_more_than_the_threshold() -> None:
    lines = {1: line(1)}
    small = [("eta_changed", {"line_pk": 1, "old_eta": "2026-03-10", "new_eta": "2026-03-11"})]
    big = [("eta_changed", {"line_pk": 1, "old_eta": "2026-03-10", "new_eta": "2026-03-14"})]
    appeared = [("eta_changed", {"line_pk": 1, "old_eta": None, "new_eta": "2026-03-14"})]
    assert notices_for(small, lines, RuleConfig(eta_change_min_days=1)) == []
    found = notices_for(big, lines, RuleConfig(eta_change_min_days=1))
    assert kinds(found) == [("eta_changed", "SO-1", [1])] and found[0].previous_eta == {1: "2026-03-10"}
    assert kinds(notices_for(small, lines, RuleConfig(eta_change_min_days=0))) == [("eta_changed", "SO-1", [1])]
    assert kinds(notices_for(appeared, lines, RuleConfig(eta_change_min_days=30))) == [("eta_changed", "SO-1", [1])]


def test_eta_change_of_a_line_that_stopped_waiting_is_not_news() -> None:
    lines = {1: line(1, status="allocated", allocated=5)}
    events = [("eta_changed", {"line_pk": 1, "old_eta": "2026-03-10", "new_eta": None}),
              ("backorder_resolved", {"line_pk": 1})]
    assert kinds(notices_for(events, lines, RuleConfig())) == [("allocated", "SO-1", [1])]


def test_shipped_only_for_lines_that_waited_unless_configured() -> None:
    lines = {1: line(1, status="shipped", waited=False), 2: line(2, status="shipped", waited=True)}
    events = [("line_shipped", {"line_pk": 1, "carrier": "DHL", "tracking": "JD1"}),
              ("line_shipped", {"line_pk": 2, "carrier": "DHL", "tracking": "JD1"})]
    only = notices_for(events, lines, RuleConfig())
    assert kinds(only) == [("shipped", "SO-1", [2])] and only[0].extra["tracking"] == "JD1"
    assert kinds(notices_for(events, lines, RuleConfig(shipped_only_backorders=False))) == [
        ("shipped", "SO-1", [1, 2])]


def test_high_value_backorder_goes_to_staff_when_the_waiting_value_passes_the_threshold() -> None:
    lines = {1: line(1, qty=10, price=60.0), 2: line(2, qty=10, price=50.0, allocated=4)}
    events = [("line_backordered", {"line_pk": 1}), ("line_backordered", {"line_pk": 2})]
    found = notices_for(events, lines, RuleConfig(high_value_threshold=900))
    staff = [n for n in found if n.audience == "staff"]
    assert len(staff) == 1 and staff[0].kind == "high_value_backorder"
    assert staff[0].extra == {"value": 900.0, "threshold": 900}  # 10 x 60 + 6 x 50
    assert not [n for n in notices_for(events, lines, RuleConfig(high_value_threshold=901)) if n.audience == "staff"]


def test_delay_cancel_and_tasks() -> None:
    lines = {1: line(1), 2: line(2, status="cancelled")}
    events = [("delay_detected", {"line_pk": 1, "days_late": 4, "previous_severity": None}),
              ("delay_detected", {"line_pk": 1, "days_late": 9, "previous_severity": "medium"}),
              ("line_cancelled", {"line_pk": 2, "previous_status": "backordered"}),
              ("task_opened", {"task_id": 7, "kind": "procurement_review", "sku": "SKU-1", "title": "Review"}),
              ("task_opened", {"task_id": 8, "kind": "inventory_check", "sku": "SKU-2", "title": "Count"}),
              ("task_opened", {"task_id": 9, "kind": "something_else", "sku": "SKU-2", "title": "?"})]
    found = notices_for(events, lines, RuleConfig())
    assert sorted(n.kind for n in found) == ["backorder_cancelled", "delay_overdue", "inventory_task",
                                             "procurement_task"]
    assert next(n for n in found if n.kind == "delay_overdue").extra["days_late"] == 4
    assert next(n for n in found if n.kind == "procurement_task").extra["task"]["id"] == 7


def test_disabled_kinds_make_nothing() -> None:
    events = [("line_backordered", {"line_pk": 1})]
    assert notices_for(events, {1: line(1)}, RuleConfig(disabled=frozenset({"backorder_created"}))) == []


def test_a_pending_notice_is_stale_once_none_of_its_lines_fits_it() -> None:
    assert still_applies("backorder_created", ["allocated", "partially_allocated"])
    assert not still_applies("backorder_created", ["allocated", "cancelled"])
    assert not still_applies("allocated", ["shipped"])
    assert still_applies("shipped", ["shipped"])


def test_segment_exclusions() -> None:
    seg = Segment("C1", "gold", "eu-west", frozenset({"vip"}), frozenset({"shopify"}))
    assert excluded(seg, {"tiers": ["gold"]})
    assert excluded(seg, {"regions": ["eu-west"]})
    assert excluded(seg, {"tags": ["vip", "b2b"]})
    assert excluded(seg, {"sources": ["shopify"]})
    assert excluded(seg, {"customers": ["C1"]})
    assert not excluded(seg, {"tiers": ["standard"], "tags": ["b2b"], "customers": ["C2"]})
