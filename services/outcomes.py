"""How applying an event can end other than 'applied'."""

from __future__ import annotations

from decimal import Decimal


class Park(Exception):
    """Valid but cannot be applied yet: kept as a dead letter until `missing_kind` `missing_key` arrives."""

    def __init__(self, reason: str, missing_kind: str | None = None, missing_key: str | None = None,
                 impact_value: Decimal | float = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing_kind = missing_kind
        self.missing_key = missing_key
        self.impact_value = Decimal(str(impact_value))


class Ignore(Exception):
    """Recorded but changes nothing (a stale count, an order placed twice)."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note
