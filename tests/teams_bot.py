"""The app with [teams] configured, activities posted into POST /api/messages as Teams sends them, and a fake Bot
Connector on 127.0.0.1 (tests/fakes/bot_connector.py) for what the bot posts back. Shared by the Teams tests
(tests/integration/test_teams.py) and the drafts approved in Teams (test_teams_approvals.py); tests/conftest.py
registers the `bc` fixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backorder.config import load_settings
from services.context import Context
from tests.fakes.bot_connector import BotConnector


@pytest.fixture
def bc() -> Iterator[BotConnector]:
    """The fake Bot Connector: the service URL of the activities it builds, where the bot's answers arrive."""
    with BotConnector() as connector:
        yield connector


def teams_ctx(ctx: Context, teams: dict[str, Any] | None = None, **overrides: Any) -> Context:
    """The test context with [teams] (anonymous, local-development mode unless given) and `overrides`; the daily
    ops digest is off unless [notify] is given."""
    overrides.setdefault("notify", {"rules": {"ops_digest": {"enabled": False}}})
    settings = load_settings(database_url=ctx.settings.database_url, teams=teams or {"anonymous": True}, **overrides)
    return Context(engine=ctx.engine, settings=settings, clock=ctx.clock)


def post(client: TestClient, activity: dict[str, Any], **headers: str) -> Any:
    """POST an activity to /api/messages as the Bot Connector does (`headers`: Authorization, say)."""
    return client.post("/api/messages", content=json.dumps(activity),
                       headers={"Content-Type": "application/json", **headers})
