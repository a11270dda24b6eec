from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from backorder.config import Settings, load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
pytestmark = pytest.mark.usefixtures("bare_config")  # tests/unit/conftest.py


def test_defaults_are_the_embedded_sqlite_and_fifo() -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///backorder.db"
    assert s.allocation.policy == "fifo"
    assert s.api_token is None


def test_file_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "backorder.toml").write_text(
        'api_token = "from-file"\n[allocation]\npolicy = "priority"\nreceiving_buffer_days = 3\n'
    )
    s = load_settings()
    assert (s.api_token, s.allocation.policy, s.allocation.receiving_buffer_days) == ("from-file", "priority", 3)
    monkeypatch.setenv("BACKORDER_ALLOCATION__POLICY", "fifo")
    monkeypatch.setenv("BACKORDER_API_TOKEN", "from-env")
    s = load_settings()
    assert (s.api_token, s.allocation.policy, s.allocation.receiving_buffer_days) == ("from-env", "fifo", 3)


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('[severity]\nhigh_days = 9\n')
    monkeypatch.setenv("BACKORDER_CONFIG", str(other))
    assert load_settings().severity.high_days == 9


def test_plain_postgresql_url_uses_psycopg3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKORDER_DATABASE_URL", "postgresql://u@h/db")
    assert load_settings().database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("BACKORDER_ALLOCATION__POLICY", "random", "allocation.policy"),
        ("BACKORDER_ALLOCATION__PRIORITY_KEY", '["tier", "shoe_size"]', "allocation.priority_key"),
        ("BACKORDER_ALLOCATION__RECEIVING_BUFFER_DAYS", "-1", "receiving_buffer_days"),
        ("BACKORDER_DATABASE_URL", "mysql://x", "database_url"),
    ],
)
def test_bad_values_name_the_key(monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=re.escape(named)):
        load_settings()


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _keys(ann, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_key_is_documented_with_its_default() -> None:
    text = DOCS.read_text()
    for key in _keys(Settings):
        section, _, name = key.rpartition(".")
        if section:
            assert f"## `[{section}]`" in text, f"section [{section}] missing from docs/configuration.md"
        assert re.search(rf"^\| `{name}` \|", text, re.M), f"{key} missing from docs/configuration.md"
