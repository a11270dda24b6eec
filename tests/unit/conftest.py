"""Fixtures shared by the unit tests that load settings (tests/unit/test_config.py, test_schedule.py,
test_tasks_config.py); the integration fixtures are in tests/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def bare_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """load_settings() sees only what the test writes: an empty working directory (no stray backorder.toml,
    and tmp_path is where a test puts its own) and no BACKORDER_* variable from the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("BACKORDER_")]:
        monkeypatch.delenv(key)
