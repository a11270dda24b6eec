"""The bare_config fixture, for the tests that load settings (tests/unit/test_config.py, test_schedule.py,
test_tasks_config.py). A plugin of tests/conftest.py: a second conftest.py would shadow `from conftest import`."""

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
