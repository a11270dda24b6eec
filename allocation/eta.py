"""When a waiting line should get its goods: open POs first, then supplier lead time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta

from allocation.model import DomainEvent, InboundPO, Line
from allocation.ordering import sort_key_for
from allocation.policy import AllocationPolicy

LEAD_TIME_REASON = "supplier_lead_time"
NO_SOURCE_REASON = "no_inbound_po_and_no_lead_time"


def days_late(line: Line) -> int | None:
    """Days the ETA falls after the promised date (negative when early); None if either is unknown."""
    if line.eta is None or line.promised_date is None:
        return None
    return (line.eta - line.promised_date).days


def _set_eta(
    line: Line,
    eta: date | None,
    reason: str | None,
    events: list[DomainEvent],
    changed: dict[str, Line] | None,
) -> None:
    old = line.eta
    if old == eta and line.eta_reason == reason:
        return
    line.eta = eta
    line.eta_reason = reason
    if changed is not None:
        changed[line.line_id] = line
    if old != eta:
        events.append(
            DomainEvent(
                "eta_changed",
                {
                    "line_id": line.line_id,
                    "order_id": line.order_id,
                    "sku": line.sku,
                    "old_eta": old.isoformat() if old else None,
                    "new_eta": eta.isoformat() if eta else None,
                    "reason": reason,
                    "days_late": days_late(line),
                },
            )
        )


def project_etas(
    lines: Iterable[Line],
    pos: Iterable[InboundPO],
    policy: AllocationPolicy,
    today: date,
    lead_time_days: Mapping[str, int | None],
    changed: dict[str, Line] | None = None,
) -> list[DomainEvent]:
    """Set eta/eta_reason on every given line; return an eta_changed event per changed ETA.

    Per SKU, waiting lines in priority order consume open POs in (expected_at, po_id)
    order (POs without a date are ignored). A covered line's ETA is the expected date of
    the PO covering its last waiting unit (an overdue PO counts as arriving today) plus
    policy.receiving_buffer_days, reason "po:<po_id>". Lines beyond PO cover get today +
    the SKU's lead time ("supplier_lead_time"), or None ("no_inbound_po_and_no_lead_time").
    Lines not waiting get None/None. Lines whose reason alone changed are updated without
    an event; pass `changed` to collect every mutated line by line_id.
    """
    pool = lines if isinstance(lines, list) else list(lines)
    events: list[DomainEvent] = []
    waiting_by_sku: dict[str, list[Line]] = {}
    for ln in pool:
        if not ln.cancelled and ln.qty > ln.qty_allocated:
            waiting_by_sku.setdefault(ln.sku, []).append(ln)
        elif ln.eta is not None or ln.eta_reason is not None:
            _set_eta(ln, None, None, events, changed)
    if not waiting_by_sku:
        return events

    pos_by_sku: dict[str, list[InboundPO]] = {}
    for po in pos:
        if po.qty_open > 0 and po.expected_at is not None and po.sku in waiting_by_sku:
            pos_by_sku.setdefault(po.sku, []).append(po)
    key = sort_key_for(pool, policy)
    buffer = timedelta(days=policy.receiving_buffer_days)

    for sku, group in waiting_by_sku.items():
        group.sort(key=key)
        inbound = sorted(pos_by_sku.get(sku, ()), key=lambda p: (p.expected_at, p.po_id))
        lead = lead_time_days.get(sku)
        if lead is not None:
            fallback: tuple[date | None, str] = (today + timedelta(days=lead), LEAD_TIME_REASON)
        else:
            fallback = (None, NO_SOURCE_REASON)
        n = len(inbound)
        i = 0
        left = inbound[0].qty_open if n else 0
        for ln in group:
            need = ln.qty - ln.qty_allocated
            covering: InboundPO | None = None
            while need > 0 and i < n:
                covering = inbound[i]
                take = left if left < need else need
                need -= take
                left -= take
                if left == 0:
                    i += 1
                    left = inbound[i].qty_open if i < n else 0
            if need == 0 and covering is not None:
                arrives = covering.expected_at
                assert arrives is not None  # undated POs were filtered out above
                _set_eta(ln, max(arrives, today) + buffer, f"po:{covering.po_id}", events, changed)
            else:
                _set_eta(ln, fallback[0], fallback[1], events, changed)
    return events
