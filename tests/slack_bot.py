"""The app with [slack] pointed at a fake Slack Web API on 127.0.0.1 (tests/fakes/slack_api.py), and requests
into POST /slack/events signed as Slack signs them. Shared by the Slack front door and sender tests
(tests/integration/test_slack.py) and the drafts approved from Slack (test_slack_approvals.py);
tests/conftest.py registers the `slack` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backorder.config import load_settings
from services.channels import add_staff
from services.context import Context
from store.db import unit_of_work
from tests.fakes.slack_api import FakeSlack, SlackSigner

TOKEN = "xoxb-1234-5678-backorder"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM_CHANNEL = "C0TEAM123"

signer = SlackSigner(SECRET)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """The fake Slack Web API; the bot token TOKEN is the one it accepts."""
    with FakeSlack(TOKEN) as fake:
        yield fake


def slack_context(ctx: Context, slack: FakeSlack, rate: float, **notify: Any) -> Context:
    """The test context with [slack] pointed at the fake and team alerts (and so the approvers, [staff] approver
    unset) going to one Slack channel; `rate`: messages a second per destination, `notify`: more of [notify]."""
    settings = load_settings(
        database_url=ctx.settings.database_url,
        slack={"bot_token": TOKEN, "signing_secret": SECRET, "api_base_url": slack.api_url},
        staff={"team": {"channels": ["slack"], "slack_channel": TEAM_CHANNEL}},
        # The daily ops digest (due at 08:00, the clock says 09:00) would join every drain: off here.
        notify={"rate_per_destination": {"slack": rate}, "rules": {"ops_digest": {"enabled": False}}, **notify},
    )
    return Context(engine=ctx.engine, settings=settings, clock=ctx.clock)


def link(ctx: Context, staff_id: str, roles: list[str], slack_user: str, **kw: Any) -> None:
    """`backorder staff add <staff_id> --role … --slack-user <slack_user>`, as the CLI does it."""
    with unit_of_work(ctx.engine) as conn:
        add_staff(conn, staff_id, roles, ctx.now(), slack_user=slack_user, **kw)


def post(client: TestClient, signed: tuple[bytes, dict[str, str]]) -> Any:
    """POST a request built by `signer` (body, headers) to /slack/events."""
    body, headers = signed
    return client.post("/slack/events", content=body, headers=headers)
