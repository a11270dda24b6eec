"""Every inbound door refuses a missing, wrong, tampered or stale signature and answers the valid one, on both
stores. The cases are the same six for each door where the door defines them (missing, wrong key, tampered,
stale, replay, valid); where a door has no such notion the case says what stands in for it.

There is no Shopify intake in this product: orders arrive as canonical events on POST /events behind the
API token, so the token's cases stand for that door.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from bot.api import create_app
from notifiers import signing
from services import weekly_report
from services.context import Context
from services.customer_actions import link_signature
from store import tables as t
from tests.fakes.bot_connector import BotConnector, SigningKey
from tests.fakes.slack_api import FakeSlack, SlackSigner
from tests.fakes.twilio_api import FakeTwilio, inbound_sms, inbound_whatsapp, signed, status_callback
from tests.security_kit import KETTLES, LINKS_BASE, LINKS_SECRET, TEAMS_APP_ID, ev, production_teams, tampered_claims
from tests.slack_bot import post as slack_post
from tests.slack_bot import signer, slack_context
from tests.teams_bot import post as teams_post
from tests.teams_bot import teams_ctx
from tests.twilio_bot import ACCOUNT, PUBLIC, TOKEN, TwilioBot

SIX = ["missing", "wrong_key", "tampered", "stale", "replay", "valid"]
ADA = "+447911123456"


def _count(ctx: Context, table: Any, **where: Any) -> int:
    q = select(func.count()).select_from(table)
    for column, value in where.items():
        q = q.where(table.c[column] == value)
    with ctx.engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


# -- Slack: X-Slack-Signature over v0:<timestamp>:<body>, 5 minutes' tolerance (slack-bolt) ------------------

def _dm(text: str) -> dict[str, Any]:
    return {"type": "message", "channel": "D0ALICE", "channel_type": "im", "user": "U0ALICE", "text": text,
            "ts": "1709370000.000100"}


@pytest.mark.parametrize("case", SIX)
def test_slack_events(case: str, ctx: Context, slack: FakeSlack) -> None:
    """"replay" is the same signed request again inside the 5 minutes: acked, not answered twice."""
    body, headers = signer.event(_dm("open tasks"), event_id=f"Ev-{case}")
    refused: dict[str, tuple[bytes, dict[str, str]]] = {
        "missing": (body, {"Content-Type": "application/json"}),
        "wrong_key": SlackSigner("not-the-signing-secret").event(_dm("open tasks"), event_id="Ev-wrong"),
        "tampered": (body.replace(b"open tasks", b"allocate KTL-200"), headers),
        "stale": signer.event(_dm("open tasks"), event_id="Ev-stale", timestamp=int(time.time()) - 301),
    }
    # As a context manager the app's event loop outlives each request: Bolt answers after its ack.
    with TestClient(create_app(slack_context(ctx, slack, 100.0), background_applier=False)) as client:
        if case in refused:
            assert slack_post(client, refused[case]).status_code == 401
            assert slack.calls() == [] and _count(ctx, t.inbound_messages) == 0
            return
        assert slack_post(client, (body, headers)).status_code == 200
        slack.wait_for("chat.postMessage", 1)
        if case == "replay":
            assert slack_post(client, (body, headers)).status_code == 200
            assert slack_post(client, signer.event(_dm("open tasks"), event_id="Ev-next")).status_code == 200
            assert len(slack.wait_for("chat.postMessage", 2)) == 2
    assert len(slack.calls("chat.postMessage")) == (2 if case == "replay" else 1)
    assert _count(ctx, t.inbound_messages, channel="slack", message_id=f"Ev-{case}") == 1


# -- Twilio: X-Twilio-Signature, HMAC-SHA1 of our public URL and the form (no timestamp) -----------------------

def _twilio_request(path: str) -> tuple[str, dict[str, str], dict[str, str]]:
    if path == "/twilio/sms":
        return inbound_sms(TOKEN, PUBLIC, frm=ADA, body="where is my order 1042?", account_sid=ACCOUNT)
    if path == "/twilio/whatsapp":
        return inbound_whatsapp(TOKEN, PUBLIC, frm=ADA, body="where is my order 1042?", account_sid=ACCOUNT)
    return status_callback(TOKEN, PUBLIC, sid="SM" + "0" * 32, status="delivered", to=ADA, account_sid=ACCOUNT)


@pytest.mark.parametrize("path", ["/twilio/sms", "/twilio/whatsapp", "/twilio/status"])
@pytest.mark.parametrize("case", SIX)
def test_twilio_webhooks(case: str, path: str, ctx: Context, fake: FakeTwilio) -> None:
    """Twilio signs no timestamp: "stale" is a signature made for another URL (another host's, or another
    route's), which is what a captured request replayed elsewhere carries; "replay" is the same request
    delivered again, answered once (the MessageSid is recorded with the answer)."""
    bot = TwilioBot(ctx, fake)
    _, form, headers = _twilio_request(path)
    other = "/twilio/whatsapp" if path == "/twilio/sms" else "/twilio/sms"
    refused = {
        "missing": (form, {k: v for k, v in headers.items() if k != "X-Twilio-Signature"}, "missing"),
        "wrong_key": (form, {**headers, **signed("not-our-auth-token", PUBLIC, path, form)}, "does not match"),
        "tampered": ({**form, "Body": "cancel everything", "MessageStatus": "failed"}, headers, "does not match"),
        "stale": (form, {**headers, **signed(TOKEN, "https://old.example.com", path, form)}, "does not match"),
    }
    if case in refused:
        data, hdrs, reason = refused[case]
        r = bot.client.post(path, data=data, headers=hdrs)
        assert r.status_code == 403 and reason in r.json()["detail"]
        moved = bot.client.post(other, data=form, headers=headers)  # a good signature, at another route
        assert moved.status_code in (403, 404), moved.text
        assert bot.rows() == [] and _count(ctx, t.inbound_messages) == 0
        return
    deliveries = 2 if case == "replay" else 1
    for _ in range(deliveries):
        assert bot.client.post(path, data=form, headers=headers).status_code == 200
    if path != "/twilio/status":
        assert len(bot.rows(kind="chat_reply")) == 1
        assert _count(ctx, t.inbound_messages, message_id=form["MessageSid"]) == 1


# -- Teams: Bot Framework JWT (RS256, the Bot Framework's keys, our app id as audience) -----------------------

TEAMS_CASES = ["missing", "wrong_key", "tampered_claims", "expired", "wrong_audience", "valid"]


@pytest.mark.parametrize("case", TEAMS_CASES)
def test_teams_messages(case: str, ctx: Context, bc: BotConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    made = teams_ctx(ctx, production_teams(bc, monkeypatch))
    client = TestClient(create_app(made, background_applier=False))
    good = bc.key.token(TEAMS_APP_ID, service_url=bc.url)
    tokens = {
        "wrong_key": SigningKey(kid=bc.key.kid).token(TEAMS_APP_ID, service_url=bc.url),  # same kid, another key
        "tampered_claims": tampered_claims(bc.key.token(TEAMS_APP_ID, service_url=bc.url, issued_at=0),
                                           exp=int(time.time()) + 3600),  # an expired token "renewed"
        "expired": bc.key.token(TEAMS_APP_ID, service_url=bc.url, issued_at=time.time() - 7200),
        "wrong_audience": bc.key.token("11111111-2222-3333-4444-555555555555", service_url=bc.url),
        "valid": good,
    }
    headers = {"Authorization": f"Bearer {tokens[case]}"} if case in tokens else {}
    r = teams_post(client, bc.message("open tasks"), **headers)
    if case != "valid":
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert bc.posts == [] and bc.tokens == [] and _count(ctx, t.inbound_messages) == 0
        return
    assert r.status_code == 202
    assert bc.wait_for(1)[0].activity["text"]


# -- signed e-mail offer links (bot/offer_links.py) -------------------------------------------------------------

OFFER_SETUP = [
    *KETTLES,
    ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "region": "north",
                                    "contacts": {"email": "ada@example.com"}, "preferences": {"channels": ["email"]}}),
    ev("o1", "order.placed", {"order_id": "1042", "customer_id": "C1", "lines": [
        {"line_id": "1", "sku": "A", "qty": 2, "unit_price": 40}]}),
]


@pytest.mark.parametrize("case", SIX)
def test_offer_links(case: str, ctx: Context, fake: FakeTwilio) -> None:
    """The signature is HMAC("<verb>:<offer id>"); links do not expire, the offer does: "stale" is the link of
    an offer already decided, "replay" the valid button pressed twice. Neither decides anything again."""
    bot = TwilioBot(ctx, fake, links={"public_base_url": LINKS_BASE, "secret": LINKS_SECRET},
                    email={"host": "127.0.0.1"}, api_token="operators-token",
                    notify={"rules": {"ops_digest": {"enabled": False}}})
    bot.client.headers["Authorization"] = "Bearer operators-token"
    bot.events(OFFER_SETUP)
    [offer] = bot.table_rows(t.substitution_offers)
    anonymous = TestClient(bot.client.app)  # a browser: no token, the signature is the authorisation
    accept = f"/offers/{offer.id}/accept"
    good = link_signature(LINKS_SECRET, "accept", offer.id)
    refused = {
        "missing": (accept, {}),
        "wrong_key": (accept, {"sig": link_signature("another-secret", "accept", offer.id)}),
        "tampered": (accept, {"sig": link_signature(LINKS_SECRET, "decline", offer.id)}),  # the other verb's
    }
    if case in refused:
        path, params = refused[case]
        r = anonymous.post(path, params=params)
        assert r.status_code == 403 and "Red kettle" not in r.text
        assert anonymous.post(f"/offers/{offer.id + 1}/accept", params={"sig": good}).status_code == 403
        assert bot.table_rows(t.substitution_offers)[0].status == "offered"
        return
    if case == "stale":
        decline = anonymous.post(f"/offers/{offer.id}/decline",
                                 params={"sig": link_signature(LINKS_SECRET, "decline", offer.id)})
        assert decline.status_code == 200
    assert anonymous.post(accept, params={"sig": good}).status_code == 200
    decided = bot.table_rows(t.substitution_offers)[0].status
    assert decided == ("declined" if case == "stale" else "accepted")
    accepted = bot.table_rows(t.audit_log, action="substitution_accepted")
    assert bool(accepted) is (case != "stale")
    if case == "replay":
        again = anonymous.post(accept, params={"sig": good})
        assert again.status_code == 200 and f"You already accepted offer {offer.id}" in again.text
        assert bot.table_rows(t.audit_log, action="substitution_accepted") == accepted


# -- signed report chart links (bot/reports_api.py) and the API bearer token ----------------------------------

CHART_CASES = ["missing", "wrong_key", "tampered", "other_report", "valid"]


@pytest.mark.parametrize("case", CHART_CASES)
def test_report_chart_links(case: str, ctx: Context, fake: FakeTwilio) -> None:
    """A chart link is HMAC("report-chart:<id>:<chart>") and does not expire on purpose: an Adaptive Card in an
    old Teams message loads its image by that URL. It opens one chart of one report, read-only, so a replay
    is harmless; a link moved to another report or chart is refused."""
    bot = TwilioBot(ctx, fake, links={"public_base_url": LINKS_BASE, "secret": LINKS_SECRET}, api_token="tok")
    figures = weekly_report.build(bot.ctx, "2026-W09")
    with ctx.engine.begin() as conn:
        report_id = conn.execute(insert(t.reports).values(
            kind="weekly", period_start=datetime.fromisoformat(figures["start"]),
            period_end=datetime.fromisoformat(figures["end"]), figures=figures,
            created_at=ctx.now()).returning(t.reports.c.id)).scalar_one()
    good = weekly_report.chart_signature(LINKS_SECRET, report_id, "trend")
    params = {
        "missing": (report_id, "trend", None),
        "wrong_key": (report_id, "trend", weekly_report.chart_signature("another-secret", report_id, "trend")),
        "tampered": (report_id, "aging", good),
        "other_report": (report_id + 1, "trend", good),
        "valid": (report_id, "trend", good),
    }[case]
    rid, name, sig = params
    r = bot.client.get(f"/reports/{rid}/chart.png", params={"chart": name, **({"sig": sig} if sig else {})})
    if case == "valid":
        assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"


API_CASES = {"missing": None, "wrong_key": "Bearer not-the-token", "tampered": "Bearer api-token-for-tests-x",
             "wrong_scheme": "Basic YXBpLXRva2VuLWZvci10ZXN0cw==", "valid": "Bearer api-token-for-tests"}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_bearer_token(case: str, ctx: Context, fake: FakeTwilio) -> None:
    """A static token (rotated in the configuration): it has no time to go stale, nor a signature to replay."""
    bot = TwilioBot(ctx, fake, api_token="api-token-for-tests")
    header = API_CASES[case]
    headers = {"Authorization": header} if header else {}
    event = ev("w", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"})
    r = bot.client.post("/events", json=event, headers=headers)
    if case == "valid":
        assert r.status_code == 200 and _count(ctx, t.inbox) == 1
        assert bot.client.get("/backorders", headers=headers).status_code == 200
    else:
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert "api-token-for-tests" not in r.text and _count(ctx, t.inbox) == 0
        assert bot.client.get("/backorders", headers=headers).status_code == 401


# -- our own outbound webhooks: what a receiver checks (notifiers/signing.py) -----------------------------------

@pytest.mark.parametrize("case", SIX)
def test_our_webhook_signatures(case: str) -> None:
    """The receiver's side of X-Backorder-Signature: a timestamp inside the signature, 5 minutes' tolerance.
    A replay inside the window verifies (the signature cannot know): receivers de-duplicate by the
    delivery's idempotency key, which every delivery carries."""
    body, now = b'{"type":"order.backordered","order_id":"1042"}', 1_772_442_000
    sig = signing.sign("webhook-secret", now, body)
    checks = {
        "missing": ("webhook-secret", str(now), body, None, now),
        "wrong_key": ("webhook-secret", str(now), body, signing.sign("other-secret", now, body), now),
        "tampered": ("webhook-secret", str(now), body.replace(b"1042", b"1043"), sig, now),
        "stale": ("webhook-secret", str(now), body, sig, now + 301),
        "replay": ("webhook-secret", str(now + 60), body, sig, now + 60),  # a fresh timestamp on an old signature
        "valid": ("webhook-secret", str(now), body, sig, now + 299),
    }
    secret, stamp, payload, header, at = checks[case]
    assert signing.verify(secret, stamp, payload, header, now=at) is (case == "valid")
