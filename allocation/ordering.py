"""Which waiting line is served first: sort keys built once from the policy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any

from allocation.model import TIER_RANK, Line
from allocation.policy import AllocationPolicy

SortKey = Callable[[Line], tuple[Any, ...]]

# Unknown tiers rank after every known one instead of raising mid-run.
_UNKNOWN_TIER = len(TIER_RANK)


def order_values(lines: Iterable[Line]) -> dict[str, float]:
    """Total value (qty * unit_price) per order over the given, not cancelled lines."""
    totals: dict[str, float] = {}
    for line in lines:
        if not line.cancelled:
            totals[line.order_id] = totals.get(line.order_id, 0.0) + line.qty * line.unit_price
    return totals


def _fifo(line: Line) -> tuple[Any, ...]:
    return (line.placed_at, line.order_id, line.line_id)


def priority_sort_key(policy: AllocationPolicy, order_values: Mapping[str, float] | None = None) -> SortKey:
    """Return a key function: lines sorted ascending by it are in service order.

    fifo policy: (placed_at, order_id, line_id). priority policy: the components named in
    policy.priority_key, then the fifo triple (always appended so ties break the same way
    on every run). `order_values` maps order_id -> order total (see `order_values()`); when
    missing, an order's value falls back to the line's own qty * unit_price.
    """
    if policy.name == "fifo":
        return _fifo
    values = order_values if order_values is not None else {}
    getters: list[Callable[[Line], Any]] = []
    for name in policy.priority_key:
        if name == "fifo":
            break  # fifo is the full tie-break: anything after it can never decide
        if name == "tier":
            getters.append(lambda ln: TIER_RANK.get(ln.tier, _UNKNOWN_TIER))
        elif name == "rush":
            getters.append(lambda ln: not ln.rush)
        elif name == "promised_date":
            # date.max sorts an unpromised line after every promised one.
            getters.append(lambda ln: ln.promised_date or date.max)
        elif name == "order_value":
            getters.append(lambda ln: -values.get(ln.order_id, ln.qty * ln.unit_price))
        elif name == "line_value":
            getters.append(lambda ln: -(ln.qty * ln.unit_price))
    getters.append(_fifo)
    # Unrolled for the common lengths: a tuple comprehension costs ~2x at a million lines.
    if len(getters) == 1:
        return lambda ln: (_fifo(ln),)
    if len(getters) == 2:
        g0, g1 = getters
        return lambda ln: (g0(ln), g1(ln))
    if len(getters) == 3:
        g0, g1, g2 = getters
        return lambda ln: (g0(ln), g1(ln), g2(ln))
    if len(getters) == 4:
        g0, g1, g2, g3 = getters
        return lambda ln: (g0(ln), g1(ln), g2(ln), g3(ln))
    return lambda ln: tuple([g(ln) for g in getters])


def sort_key_for(lines: Iterable[Line], policy: AllocationPolicy) -> SortKey:
    """priority_sort_key with order values computed from `lines` when the policy needs them."""
    needs_values = policy.name == "priority" and "order_value" in policy.priority_key
    return priority_sort_key(policy, order_values(lines) if needs_values else None)
