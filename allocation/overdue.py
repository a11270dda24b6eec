"""Backorders past their promised date, grouped per SKU for the backorder workflow."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from allocation.model import Line
from allocation.ordering import sort_key_for
from allocation.policy import AllocationPolicy
from allocation.severity import SEVERITY_RANK, classify, worst


@dataclass(slots=True)
class OverdueSku:
    """The overdue waiting lines of one SKU and how bad they are taken together.

    lines are in priority order; line_days_late / line_severity are keyed by line_id.
    new_eta is the latest known ETA among the lines (None when none has one).
    """

    sku: str
    lines: list[Line]
    total_value: float
    max_days_late: int
    severity: str
    new_eta: date | None
    line_days_late: dict[str, int] = field(default_factory=dict)
    line_severity: dict[str, str] = field(default_factory=dict)


def overdue_days(line: Line, today: date) -> int:
    """Days late: today - promised, or eta - promised when the ETA lies further out."""
    assert line.promised_date is not None
    late = (today - line.promised_date).days
    if line.eta is not None:
        late = max(late, (line.eta - line.promised_date).days)
    return late


def find_overdue(lines: Iterable[Line], today: date, policy: AllocationPolicy) -> list[OverdueSku]:
    """SKUs with waiting lines (waiting > 0) whose promised_date is before `today`.

    A line's severity is classify(tier, its days late, its waiting value); a SKU's is the
    worst of its lines. Result is most urgent first: severity, then total value (desc),
    then sku, so the order is stable across runs.
    """
    pool = lines if isinstance(lines, list) else list(lines)
    by_sku: dict[str, list[Line]] = {}
    for ln in pool:
        if ln.promised_date is not None and ln.promised_date < today and ln.waiting > 0:
            by_sku.setdefault(ln.sku, []).append(ln)
    if not by_sku:
        return []
    key = sort_key_for(pool, policy)
    thresholds = policy.severity
    found: list[OverdueSku] = []
    for sku, group in by_sku.items():
        group.sort(key=key)
        days = {ln.line_id: overdue_days(ln, today) for ln in group}
        sev = {ln.line_id: classify(ln.tier, days[ln.line_id], ln.value, thresholds) for ln in group}
        etas = [ln.eta for ln in group if ln.eta is not None]
        found.append(
            OverdueSku(
                sku=sku,
                lines=group,
                total_value=sum(ln.value for ln in group),
                max_days_late=max(days.values()),
                severity=worst(list(sev.values())),
                new_eta=max(etas) if etas else None,
                line_days_late=days,
                line_severity=sev,
            )
        )
    found.sort(key=lambda o: (-SEVERITY_RANK[o.severity], -o.total_value, o.sku))
    return found
