"""`backorder serve --workers N`: what it refuses before starting anything (the processes themselves:
tests/integration/test_scale_out.py)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from backorder.cli import app


@pytest.mark.parametrize("extra", [["--worker"], ["--demo"]])
def test_several_api_processes_run_no_worker_and_no_demo(extra: list[str]) -> None:
    result = CliRunner().invoke(app, ["serve", "--workers", "2", *extra])
    assert result.exit_code == 2
    assert "--workers > 1 serves the API only" in result.output


def test_the_number_of_processes_is_bounded() -> None:
    result = CliRunner().invoke(app, ["serve", "--workers", "0"])
    assert result.exit_code == 2
    assert "--workers" in result.output
