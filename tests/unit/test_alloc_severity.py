import pytest

from allocation.policy import SeverityThresholds
from allocation.severity import classify, worst

T = SeverityThresholds()


@pytest.mark.parametrize(
    ("tier", "days", "value", "expected"),
    [
        ("standard", 0, 0.0, "low"),
        ("standard", None, 0.0, "low"),
        ("standard", 2, 999.0, "low"),
        ("standard", 3, 0.0, "medium"),
        ("standard", 7, 0.0, "high"),
        ("standard", 0, 1000.0, "high"),
        ("gold", 1, 0.0, "high"),
        ("gold", 0, 0.0, "low"),
        ("standard", 14, 0.0, "critical"),
        ("standard", None, 5000.0, "critical"),
        ("platinum", 1, 0.0, "critical"),
        ("platinum", 0, 10.0, "low"),
    ],
)
def test_classify_table(tier: str, days: int | None, value: float, expected: str) -> None:
    assert classify(tier, days, value, T) == expected


def test_worst() -> None:
    assert worst(["low", "critical", "medium"]) == "critical"
    assert worst([]) == "low"
