"""What one engine call decided: moves, events and the objects the caller must persist."""

from __future__ import annotations

from dataclasses import dataclass, field

from allocation.model import DomainEvent, Line, Move, Stock


@dataclass(slots=True)
class AllocationResult:
    """Everything an engine call changed, in decision order.

    changed_lines is keyed by line_id and changed_stocks by (sku, warehouse_id), so a
    caller chaining calls (release_excess then allocate) writes each row once.
    """

    moves: list[Move] = field(default_factory=list)
    events: list[DomainEvent] = field(default_factory=list)
    changed_lines: dict[str, Line] = field(default_factory=dict)
    changed_stocks: dict[tuple[str, str], Stock] = field(default_factory=dict)

    def extend(self, other: AllocationResult) -> AllocationResult:
        """Append another result's decisions to this one; returns self for chaining."""
        self.moves.extend(other.moves)
        self.events.extend(other.events)
        self.changed_lines.update(other.changed_lines)
        self.changed_stocks.update(other.changed_stocks)
        return self
