"""Plain data the allocation domain works on.

No framework imports here: the service layer copies rows into these objects, the
engine decides, and the service writes the changed objects back in one unit of work.
Objects are mutated in place by the engine (cheap at a million lines); every mutation
is also reported as a move or a domain event so the caller knows what to persist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

TIERS = ("standard", "gold", "platinum")
TIER_RANK = {"platinum": 0, "gold": 1, "standard": 2}

# Line status values (public: GET /orders shows them).
ALLOCATED = "allocated"
PARTIALLY_ALLOCATED = "partially_allocated"
BACKORDERED = "backordered"
SHIPPED = "shipped"
CANCELLED = "cancelled"


@dataclass(slots=True)
class Line:
    """One order line as the engine sees it.

    qty_allocated counts every unit ever allocated to the line, shipped ones included, so
    qty_shipped <= qty_allocated <= qty always holds. `allocations` holds only the active
    (allocated, not yet shipped) units per warehouse.
    """

    line_id: str
    order_id: str
    sku: str
    qty: int
    placed_at: datetime
    qty_allocated: int = 0
    qty_shipped: int = 0
    promised_date: date | None = None
    tier: str = "standard"
    rush: bool = False
    ship_complete: bool = False
    region: str | None = None
    unit_price: float = 0.0
    cancelled: bool = False
    allocations: dict[str, int] = field(default_factory=dict)
    status: str = BACKORDERED
    eta: date | None = None
    eta_reason: str | None = None

    @property
    def waiting(self) -> int:
        """Units still to be allocated (0 for a cancelled line)."""
        return 0 if self.cancelled else self.qty - self.qty_allocated

    @property
    def value(self) -> float:
        """Value of the waiting units."""
        return self.waiting * self.unit_price

    @property
    def order_value(self) -> float:
        return self.qty * self.unit_price


@dataclass(slots=True)
class Stock:
    """Stock of one SKU in one warehouse. available = on_hand - allocated."""

    sku: str
    warehouse_id: str
    on_hand: int = 0
    allocated: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.allocated


@dataclass(slots=True)
class InboundPO:
    """The open part of one purchase-order line for a SKU."""

    po_id: str
    sku: str
    warehouse_id: str
    expected_at: date | None
    qty_open: int  # ordered - received, never negative


@dataclass(frozen=True, slots=True)
class Move:
    """Units moved between stock and a line: kind is 'allocate' or 'release'."""

    kind: str
    line_id: str
    order_id: str
    sku: str
    warehouse_id: str
    qty: int


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """A decision, written in the same transaction as the state change it describes.

    type is one of: line_backordered, line_allocated, line_partially_allocated,
    eta_changed, delay_detected, backorder_resolved, task_opened, incident_recorded,
    allocation_released.
    """

    type: str
    data: dict[str, Any]
