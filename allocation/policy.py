"""How stock is shared out: the configurable part of allocation, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field

POLICIES = ("fifo", "priority")
# Keys a priority order may be built from; "fifo" (placed_at, order id, line id) always
# ends the key so ties break the same way on every run.
PRIORITY_KEYS = ("tier", "rush", "promised_date", "order_value", "line_value", "fifo")
DEFAULT_PRIORITY_KEY = ("tier", "rush", "promised_date", "fifo")


@dataclass(frozen=True, slots=True)
class SeverityThresholds:
    """Severity of a late backorder: the highest level whose any condition is met.

    critical: days_late >= critical_days or value >= critical_value or
    (tier == platinum and days_late >= 1); high: days_late >= high_days or
    value >= high_value or tier == gold and days_late >= 1; medium: days_late >= medium_days;
    otherwise low.
    """

    medium_days: int = 3
    high_days: int = 7
    critical_days: int = 14
    high_value: float = 1000.0
    critical_value: float = 5000.0


@dataclass(frozen=True, slots=True)
class AllocationPolicy:
    name: str = "fifo"
    priority_key: tuple[str, ...] = DEFAULT_PRIORITY_KEY
    # Warehouses tried after those of the customer's region, in this order; warehouses not
    # named come after, sorted by id.
    warehouse_order: tuple[str, ...] = ()
    warehouse_regions: dict[str, str] = field(default_factory=dict)
    allow_split: bool = True
    receiving_buffer_days: int = 1
    severity: SeverityThresholds = field(default_factory=SeverityThresholds)

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise ValueError(f"allocation.policy: {self.name!r} is not one of {', '.join(POLICIES)}")
        unknown = [k for k in self.priority_key if k not in PRIORITY_KEYS]
        if unknown:
            raise ValueError(
                f"allocation.priority_key: unknown key(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(PRIORITY_KEYS)}"
            )
