"""[tasks]: per-kind owner roles and SLAs merged over the defaults, leads, and bad values named with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from backorder.config import DEFAULT_TASK_OWNERS, DEFAULT_TASK_SLA_HOURS, TASK_KINDS, load_settings

pytestmark = pytest.mark.usefixtures("bare_config")  # tests/unit/conftest.py


def test_defaults_cover_every_kind() -> None:
    cfg = load_settings().tasks
    assert set(cfg.owner_roles) == set(cfg.sla_hours) == set(TASK_KINDS)
    assert cfg.owner_role("handoff") == "customer_service" and cfg.sla("handoff") == 4.0
    assert cfg.owner_role("purchase_suggestion") == "procurement"
    assert cfg.owner_role("something_new") is None and cfg.sla("something_new") == cfg.default_sla_hours == 24.0
    assert cfg.leads == {} and cfg.lead_channels == ["slack", "teams", "email", "sms"]


def test_a_kind_named_keeps_the_others_defaults(tmp_path: Path) -> None:
    (tmp_path / "backorder.toml").write_text(
        '[tasks.owner_roles]\nhandoff = "support"\n[tasks.sla_hours]\ninventory_check = 2.5\n'
        '[tasks.leads]\nprocurement = "lee"\n')
    cfg = load_settings().tasks
    assert cfg.owner_roles == {**DEFAULT_TASK_OWNERS, "handoff": "support"}
    assert cfg.sla_hours == {**DEFAULT_TASK_SLA_HOURS, "inventory_check": 2.5}
    assert cfg.leads == {"procurement": "lee"}


def test_the_environment_sets_it_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKORDER_TASKS__SLA_HOURS", '{"handoff": 1}')
    assert load_settings().tasks.sla("handoff") == 1.0


@pytest.mark.parametrize(("tasks", "named", "why"), [
    ({"owner_roles": {"expedite": "procurement"}}, "tasks.owner_roles", "expedite: unknown task kind"),
    ({"owner_roles": {"handoff": "Customer Service"}}, "tasks.owner_roles", "is not a role name"),
    ({"sla_hours": {"handoff": 0}}, "tasks.sla_hours", "more than 0 hours"),
    ({"sla_hours": {"recount": 3}}, "tasks.sla_hours", "recount: unknown task kind"),
    ({"default_sla_hours": -1}, "tasks.default_sla_hours", "greater than 0"),
    ({"leads": {"procurement": " "}}, "tasks.leads", "procurement: the lead's staff id is empty"),
    ({"lead_channels": ["pager"]}, "tasks.lead_channels", "unknown channel 'pager'"),
    ({"lead_channels": []}, "tasks.lead_channels", "name at least one channel"),
])
def test_bad_values_name_the_key_and_the_reason(tasks: dict[str, object], named: str, why: str) -> None:
    with pytest.raises(ValueError, match=named) as err:
        load_settings(tasks=tasks)
    assert why in str(err.value)
