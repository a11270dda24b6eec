"""How bad a late backorder is: the table documented on SeverityThresholds."""

from __future__ import annotations

from allocation.policy import SeverityThresholds

SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY_RANK = {name: i for i, name in enumerate(SEVERITIES)}


def classify(tier: str, days_late: int | None, value: float, thresholds: SeverityThresholds) -> str:
    """'low' | 'medium' | 'high' | 'critical': the highest level any of whose conditions holds.

    An unknown days_late counts as 0, so only the value conditions can raise it.
    """
    late = days_late or 0
    if (
        late >= thresholds.critical_days
        or value >= thresholds.critical_value
        or (tier == "platinum" and late >= 1)
    ):
        return "critical"
    if late >= thresholds.high_days or value >= thresholds.high_value or (tier == "gold" and late >= 1):
        return "high"
    if late >= thresholds.medium_days:
        return "medium"
    return "low"


def worst(severities: list[str]) -> str:
    """The most severe of the given levels ('low' for none)."""
    return max(severities, key=SEVERITY_RANK.__getitem__, default="low")
