"""No configured secret ever reaches a log record, an error response or an exception's text, on both stores.

Every secret is set to a distinctive value; a realistic run goes through the app with JSON logging at DEBUG:
events in, notifications out through the fakes (some sends failing), forged requests on every door,
validation errors, an LLM failing, and a configuration error. Then the whole log, every response body and
every error text are searched for each value.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from backorder.config import Settings, load_settings
from bot.api import create_app
from services.context import Context
from services.worker import drain_outbox
from tests.fakes.bot_connector import BotConnector
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack, SlackSigner
from tests.fakes.smtp_server import FakeSMTP
from tests.fakes.twilio_api import FakeTwilio, inbound_sms, signed
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.security_kit import KETTLES, TEAMS_APP_ID, ev, json_logs, production_teams, tampered_claims
from tests.teams_bot import post as teams_post
from tests.twilio_bot import ACCOUNT, PUBLIC, SMS_FROM, WA_FROM

SECRETS = {
    "api_token": "apitok-S3CR3T-4b1d9e",
    "slack.bot_token": "xoxb-S3CR3T-slackbot-77c0",
    "slack.signing_secret": "slacksign-S3CR3T-0a9f",
    "teams.app_password": "teamspw-S3CR3T-c41e",
    "twilio.auth_token": "twiliotok-S3CR3T-e8d2",
    "email.password": "smtppw-S3CR3T-51aa",
    "webhook.secret": "hooksecret-S3CR3T-9d3c",
    "links.secret": "linksecret-S3CR3T-2f6b",
    "llm.api_key": "sk-S3CR3T-llmkey-8e07",
}
AUTH = {"Authorization": f"Bearer {SECRETS['api_token']}"}
ADA = "+447911123456"


EVENTS = [
    *KETTLES,
    ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "region": "north",
                                    "contacts": {"phone": ADA, "email": "ada@example.com"},
                                    "preferences": {"channels": ["sms", "email"]}}),
    ev("c2", "customer.upserted", {"customer_id": "C2", "name": "Bea", "region": "north",
                                    "contacts": {"email": "bea@example.com"}, "preferences": {"channels": ["email"]}}),
    *[ev(f"o{n}", "order.placed", {"order_id": str(1040 + n), "customer_id": "C1" if n % 2 else "C2", "lines": [
        {"line_id": "1", "sku": "A", "qty": 2, "unit_price": 40}]}) for n in range(1, 5)],
]


@pytest.fixture
def fakes(bc: BotConnector, llm: FakeOpenAI) -> Iterator[dict[str, Any]]:
    with (FakeSlack(SECRETS["slack.bot_token"]) as slack, FakeTwilio(ACCOUNT, SECRETS["twilio.auth_token"]) as tw,
          FakeSMTP(tls=True, auth=("bot", SECRETS["email.password"])) as smtp,
          WebhookReceiver(secret=SECRETS["webhook.secret"]) as rx):
        yield {"slack": slack, "twilio": tw, "smtp": smtp, "webhook": rx, "bc": bc, "llm": llm}


def _settings(ctx: Context, f: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    return load_settings(
        database_url=ctx.settings.database_url,
        api_token=SECRETS["api_token"],
        slack={"bot_token": SECRETS["slack.bot_token"], "signing_secret": SECRETS["slack.signing_secret"],
               "api_base_url": f["slack"].api_url},
        teams=production_teams(f["bc"], monkeypatch, SECRETS["teams.app_password"]),
        twilio={"account_sid": ACCOUNT, "auth_token": SECRETS["twilio.auth_token"], "api_base_url": f["twilio"].url,
                "public_base_url": PUBLIC, "sms_from": SMS_FROM, "whatsapp_from": WA_FROM, "sms_mps": 100},
        email={"host": "127.0.0.1", "port": f["smtp"].port, "username": "bot", "password": SECRETS["email.password"],
               "ca_file": str(f["smtp"].ca_pem_path), "from_address": "alerts@shop.test"},
        webhook={"url": f["webhook"].url, "secret": SECRETS["webhook.secret"], "allow_http": True,
                 "allow_private": True},
        links={"public_base_url": "https://bot.example.com", "secret": SECRETS["links.secret"]},
        llm={"base_url": f["llm"].base_url, "model": "fake-1", "api_key": SECRETS["llm.api_key"]},
        staff={"team": {"channels": ["slack"], "slack_channel": "C0TEAM"}},
        notify={"rules": {"ops_digest": {"enabled": False}}, "rate_per_destination": {"sms": 100.0, "slack": 100.0}},
        logging={"level": "DEBUG", "format": "json"},
    )


def _forged_and_invalid(client: TestClient, f: dict[str, Any]) -> list[Any]:
    """Requests that must fail: bad signatures and tokens on every door, and bodies that do not validate."""
    bc: BotConnector = f["bc"]
    answers = []
    body, headers = SlackSigner("not-the-secret").event({"type": "message", "text": "hi", "user": "U1",
                                                         "channel": "D1", "channel_type": "im"}, event_id="Ev1")
    answers.append(client.post("/slack/events", content=body, headers=headers))
    stale = SlackSigner(SECRETS["slack.signing_secret"]).event(
        {"type": "message", "text": "hi", "user": "U1", "channel": "D1", "channel_type": "im"}, event_id="Ev2",
        timestamp=int(time.time()) - 3600)
    answers.append(client.post("/slack/events", content=stale[0], headers=stale[1]))
    path, form, headers = inbound_sms(SECRETS["twilio.auth_token"], PUBLIC, frm=ADA, body="where is 1041",
                                      account_sid=ACCOUNT)
    answers.append(client.post(path, data={**form, "Body": "changed"}, headers=headers))
    answers.append(client.post(path, data=form, headers={**headers, **signed("wrong", PUBLIC, path, form)}))
    answers.append(client.post(path, data=form, headers=headers))  # a good one: answered through the outbox
    expired = bc.key.token(TEAMS_APP_ID, service_url=bc.url, issued_at=0)
    for token in ("garbage", expired, tampered_claims(expired, exp=int(time.time()) + 60)):
        answers.append(teams_post(client, bc.message("open tasks"), Authorization=f"Bearer {token}"))
    answers.append(teams_post(client, bc.message("open tasks"),
                              Authorization=f"Bearer {bc.key.token(TEAMS_APP_ID, service_url=bc.url)}"))
    answers.append(client.get("/backorders", headers={"Authorization": "Bearer apitok-S3CR3T-4b1d9"}))
    answers.append(client.get("/backorders", headers={"Authorization": f"Basic {SECRETS['api_token']}x"}))
    answers.append(client.post("/events", content=b"{not json", headers=AUTH))
    answers.append(client.post("/events", json=[{"event_id": "x", "type": "order.placed"}], headers=AUTH))
    answers.append(client.post("/chat", json={"user": {}, "text": ""}, headers=AUTH))
    answers.append(client.post("/offers/1/accept", params={"sig": "0" * 64}))
    answers.append(client.get("/reports/1/chart.png", params={"sig": "0" * 32}))
    answers.append(client.post("/chat", content=b"{" + b" " * (2 * 1024 * 1024) + b"}", headers=AUTH))
    return answers


def test_no_secret_in_logs_responses_or_errors(ctx: Context, fakes: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(ctx, fakes, monkeypatch)
    made = Context(engine=ctx.engine, settings=settings, clock=ctx.clock)
    errors: list[str] = []
    with json_logs() as log:
        client = TestClient(create_app(made, background_applier=False), raise_server_exceptions=False)
        fakes["twilio"].fail_next(1, 500)
        fakes["webhook"].fail_next(2, "500")
        fakes["smtp"].fail_data(451)
        fakes["slack"].fail_next("chat.postMessage", "ratelimited")
        fakes["llm"].script([FakeOpenAI.error(500)])
        answers = [client.post("/events", json=EVENTS, headers=AUTH)]
        assert answers[0].status_code == 200, answers[0].text
        answers += _forged_and_invalid(client, fakes)
        answers.append(client.post("/chat", json={"user": {"customer_id": "C1"}, "text": "hmm, kettles?"},
                                   headers=AUTH))
        asyncio.run(drain_outbox(made))  # some sends fail: retried later, their errors logged and stored
        fakes["smtp"].fail_data(None)
        asyncio.run(drain_outbox(made))
        for bad in ({"links": {"public_base_url": "ftp://x", "secret": SECRETS["links.secret"]}},
                    {"teams": {"app_id": "x", "app_password": SECRETS["teams.app_password"], "anonymous": True}},
                    {"api_token": SECRETS["api_token"], "slack": {"bot_token": SECRETS["slack.bot_token"],
                                                                  "channel": 5}},
                    {"email": {"host": "h", "password": SECRETS["email.password"], "port": "x"}}):
            with pytest.raises(ValidationError) as err:
                load_settings(database_url=ctx.settings.database_url, **bad)
            # What the CLI prints and a log would hold. (errors() keeps the raw input, by pydantic's design:
            # nothing may log it without include_input=False.)
            errors += [str(err.value), repr(err.value), json.dumps(err.value.errors(include_input=False), default=str)]
        outbox = client.get("/notifications", headers=AUTH)
    assert outbox.status_code == 200
    stored_errors = [n["error"] or "" for n in outbox.json()]
    assert any(stored_errors), outbox.json()
    assert any(a.status_code in (401, 403) for a in answers) and any(a.status_code == 422 for a in answers)
    assert any(a.status_code == 413 for a in answers)
    lines = log.getvalue().splitlines()
    assert len(lines) > 20 and all(json.loads(line) for line in lines)
    assert any(json.loads(line)["level"] == "DEBUG" for line in lines)
    texts = {"log": log.getvalue(), "responses": "\n".join(a.text + json.dumps(dict(a.headers)) for a in answers),
             "stored errors": "\n".join(stored_errors), "config errors": "\n".join(errors),
             "settings": repr(settings) + str(settings)}
    leaks = [(key, where) for key, value in SECRETS.items() for where, text in texts.items() if value in text]
    assert leaks == [], leaks
