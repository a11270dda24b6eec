"""Helpers of the security tests (tests/security/): the app with every door mounted, Bot Framework tokens
checked against the fake Bot Connector's key, a settable monotonic clock, and JSON log capture.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from jwt import PyJWKClient
from microsoft_agents.hosting.core.authorization.authentication_constants import AuthenticationConstants
from microsoft_agents.hosting.core.authorization.jwt import jwt_token_validator

from backorder.config import LoggingSettings, load_settings
from backorder.logs import configure
from services.context import Context
from tests.fakes.bot_connector import TENANT, BotConnector
from tests.fakes.slack_api import FakeSlack
from tests.slack_bot import SECRET as SLACK_SECRET
from tests.slack_bot import TOKEN as SLACK_TOKEN
from tests.twilio_bot import ACCOUNT, PUBLIC, SMS_FROM, WA_FROM
from tests.twilio_bot import TOKEN as TWILIO_TOKEN

TEAMS_APP_ID = "00000000-0000-0000-0000-0000000000b0"
LINKS_BASE = "https://bot.example.com"
LINKS_SECRET = "links-secret-for-security-tests"


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": "2026-03-02T08:00:00Z", "source": "t", "data": data}


# Blue kettle A waits (lead time 30 days) while its configured substitute B is in stock: an offer is made.
KETTLES = [
    ev("w", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
    ev("pA", "product.upserted", {"sku": "A", "name": "Blue kettle", "price": 40, "lead_time_days": 30,
                                  "substitutes": ["B"]}),
    ev("pB", "product.upserted", {"sku": "B", "name": "Red kettle", "price": 42, "lead_time_days": 30}),
    ev("sB", "inventory.adjusted", {"sku": "B", "warehouse_id": "LDS", "on_hand": 5}),
]


class SettableClock:
    """A monotonic clock the test moves by hand (bot/limits.py takes any callable)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def every_door(ctx: Context, slack: FakeSlack, *, twilio_api: str = "http://127.0.0.1:9",
               teams: dict[str, Any] | None = None, **overrides: Any) -> Context:
    """The test context with Slack (at the fake), Teams (anonymous unless `teams`), Twilio SMS and WhatsApp,
    and signed e-mail links all configured; `overrides`: more top-level settings."""
    settings = load_settings(
        database_url=ctx.settings.database_url,
        slack={"bot_token": SLACK_TOKEN, "signing_secret": SLACK_SECRET, "api_base_url": slack.api_url},
        teams=teams or {"anonymous": True},
        twilio={"account_sid": ACCOUNT, "auth_token": TWILIO_TOKEN, "api_base_url": twilio_api,
                "public_base_url": PUBLIC, "sms_from": SMS_FROM, "whatsapp_from": WA_FROM, "sms_mps": 100,
                "whatsapp_mps": 100},
        links={"public_base_url": LINKS_BASE, "secret": LINKS_SECRET},
        notify=overrides.pop("notify", {"rules": {"ops_digest": {"enabled": False}}}),
        **overrides,
    )
    return Context(engine=ctx.engine, settings=settings, clock=ctx.clock)


def production_teams(bc: BotConnector, monkeypatch: pytest.MonkeyPatch, app_password: str = "s3cret") -> dict[str, Any]:
    """[teams] in production mode (tokens checked), with the SDK's Bot Framework key client pointed at the fake.

    The SDK has no setting for the JWKS address (fixed to login.botframework.com), so its per-address key
    client for that address is replaced for the test, as tests/integration/test_teams.py does.
    """
    cache = jwt_token_validator.JwtTokenValidator._jwk_client_manager._cache
    monkeypatch.setitem(cache, AuthenticationConstants.PUBLIC_ABS_JWKS_URL,
                        jwt_token_validator._JwkClientCacheEntry(PyJWKClient(bc.jwks_url), threading.Lock()))
    return {"app_id": TEAMS_APP_ID, "app_password": app_password, "tenant_id": TENANT, "login_base_url": bc.url}


def tampered_claims(token: str, **claims: Any) -> str:
    """The token with its claims changed and its signature kept: what a forger without the key can do."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    changed = base64.urlsafe_b64encode(json.dumps({**decoded, **claims}).encode()).rstrip(b"=").decode()
    return f"{header}.{changed}.{signature}"


@contextmanager
def json_logs() -> Iterator[io.StringIO]:
    """Every log record of the process at DEBUG, as `serve` writes them with [logging] format = "json"
    (backorder/logs.py): JSON lines, exception texts included."""
    out = io.StringIO()
    root = logging.getLogger()
    before = root.level
    handler = configure(LoggingSettings(format="json", level="DEBUG"), out)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
