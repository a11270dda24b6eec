"""Microsoft Teams on both stores: activities as Teams sends them into POST /api/messages, answers and
alerts captured by a fake Bot Connector (tests/fakes/bot_connector.py) that the Agents SDK posts to."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import regex
from fastapi.testclient import TestClient
from jsonschema.exceptions import ValidationError
from jwt import PyJWKClient
from microsoft_agents.hosting.core.authorization.authentication_constants import AuthenticationConstants
from microsoft_agents.hosting.core.authorization.jwt import jwt_token_validator
from sqlalchemy import insert, select

from backorder.config import load_settings
from bot.api import create_app
from intents.model import STAFF_INTENTS
from notifiers.adaptive_cards import CONTENT_TYPE, escape_markdown
from notifiers.senders.base import Outgoing, PermanentError, RetryableError, SendError
from notifiers.senders.teams import TeamsSender
from services import channels, tasks
from services.context import Context
from services.inbox import drain, store_events
from services.worker import drain_outbox
from store import chat_state
from store import tables as t
from store.db import unit_of_work
from tests.fakes.bot_connector import BOT_ID, TENANT, BotConnector, SigningKey
from tests.teams_bot import post, teams_ctx

ROOT = Path(__file__).resolve().parents[2]
OPS = "19:ops@thread.tacv2"
APP_ID = "00000000-0000-0000-0000-0000000000b0"


def ev(event_id: str, type_: str, data: dict[str, Any], at: str = "2026-03-02T08:59:00Z") -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": "test", "data": data}


CATALOG = [
    ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
    ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40, "lead_time_days": 14}),
    ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "region": "north"}),
    ev("o1", "order.placed", {"order_id": "1042", "customer_id": "C1", "lines": [
        {"line_id": "1", "sku": "KTL-200", "qty": 2, "unit_price": 40}]}),
]


def apply(ctx: Context, events: list[dict[str, Any]]) -> None:
    _, ids = store_events(ctx, events)
    drain(ctx, ids)


@pytest.fixture
def dev(ctx: Context) -> Context:
    # Every account of the workspace may read here; the link-your-account answer has tests of its own.
    made = teams_ctx(ctx, staff={"team": {"channels": ["teams"], "teams_conversation": OPS}, "unlinked_read": True})
    apply(made, CATALOG)
    return made


@pytest.fixture
def client(dev: Context) -> TestClient:
    return TestClient(create_app(dev, background_applier=False))


def open_task(ctx: Context, title: str = "Count kettles") -> int:
    with ctx.engine.begin() as conn:
        return int(conn.execute(insert(t.tasks).values(kind="inventory_check", sku="KTL-200", title=title, detail={},
                                                       status="open", created_at=ctx.now())
                                .returning(t.tasks.c.id)).scalar_one())


# -- anonymous (local development) mode ------------------------------------------------------------------

def test_a_personal_chat_question_is_answered_in_a_reply(client: TestClient, bc: BotConnector) -> None:
    msg = bc.message("who's waiting on KTL-200?")
    assert post(client, msg).status_code == 202
    [reply] = bc.wait_for(1)
    # A reply to the message, in its conversation, with no token: anonymous mode sends none.
    assert reply.path == f"/v3/conversations/{msg['conversation']['id']}/activities/{msg['id']}"
    assert reply.authorization is None
    assert reply.activity["type"] == "message" and reply.activity["replyToId"] == msg["id"]
    assert reply.activity["text"].startswith("*1 line(s) wait for KTL-200*")
    assert "order *1042* (C1" in reply.activity["text"]


def test_a_channel_mention_is_answered_without_the_mention(client: TestClient, bc: BotConnector, dev: Context) -> None:
    task_id = open_task(dev)
    msg = bc.message("open tasks", conversation=f"{OPS};messageid=1700000000000", conversation_type="channel",
                     mention=True)
    assert msg["text"] == "<at>Backorder Bot</at> open tasks"
    assert post(client, msg).status_code == 202
    [reply] = bc.wait_for(1)
    assert f"#{task_id} Count kettles" in reply.activity["text"]


def test_references_are_stored_on_install_and_on_every_message(client: TestClient, bc: BotConnector,
                                                               dev: Context) -> None:
    assert post(client, bc.members_added(conversation=OPS, aad="aad-installer")).status_code == 202
    assert post(client, bc.members_added(conversation="a:1chat-bea", conversation_type="personal",
                                         aad="aad-bea")).status_code == 202  # installed for herself
    assert post(client, bc.message("hello", conversation="a:1chat-ada", aad="aad-ada")).status_code == 202
    # Ada then @mentions the bot in the team channel: her own key keeps pointing at her 1:1 chat.
    assert post(client, bc.message("hello", conversation=f"{OPS};messageid=1", conversation_type="channel",
                                   aad="aad-ada", mention=True)).status_code == 202
    with dev.engine.connect() as conn:
        team = chat_state.load_ref(conn, "teams", OPS)
        installer = chat_state.load_ref(conn, "teams", "aad-installer")
        bea = chat_state.load_ref(conn, "teams", "aad-bea")
        chat = chat_state.load_ref(conn, "teams", "a:1chat-ada")
        ada = chat_state.load_ref(conn, "teams", "aad-ada")
        thread = chat_state.load_ref(conn, "teams", f"{OPS};messageid=1")
    assert team is not None and team["conversation"]["id"] == OPS
    assert team["serviceUrl"] == bc.url and team["channelId"] == "msteams"
    assert installer is None  # whoever added the app to a team gets no personal reference from it
    assert bea is not None and bea["conversation"]["id"] == "a:1chat-bea"
    assert chat is not None and ada == chat and chat["user"]["aadObjectId"] == "aad-ada"
    assert thread is not None and thread["conversation"]["conversationType"] == "channel"


def test_a_redelivered_activity_is_answered_once(client: TestClient, bc: BotConnector) -> None:
    msg = bc.message("open tasks", id="1700000000123")
    assert post(client, msg).status_code == 202
    assert post(client, msg).status_code == 202  # Teams retries when it did not see our 202 in time
    assert post(client, bc.message("open tasks", id="1700000000124")).status_code == 202
    assert [p.reply_to_id for p in bc.posts] == ["1700000000123", "1700000000124"]


def test_the_same_message_id_in_two_conversations_is_two_messages(client: TestClient, bc: BotConnector) -> None:
    # Teams' message ids are millisecond timestamps: two chats can send the same one at the same moment.
    ada = bc.message("open tasks", conversation="a:1chat-ada", aad="aad-ada", id="1700000000500")
    bea = bc.message("open tasks", conversation="a:1chat-bea", aad="aad-bea", id="1700000000500")
    for activity in (ada, bea, ada):  # the last: Teams redelivers Ada's
        assert post(client, activity).status_code == 202
    assert [(p.conversation_id, p.reply_to_id) for p in bc.posts] == [("a:1chat-ada", "1700000000500"),
                                                                      ("a:1chat-bea", "1700000000500")]


def test_a_message_whose_answer_failed_is_answered_on_redelivery(client: TestClient, bc: BotConnector) -> None:
    msg = bc.message("open tasks", id="1700000000600")
    bc.fail_next(1, 500)  # the Bot Connector refuses the reply
    failed = post(client, msg)
    assert failed.status_code == 500 and "redelivery" in failed.json()["error"]
    assert post(client, msg).status_code == 202  # Teams redelivers what got no 2xx
    assert post(client, msg).status_code == 202  # and once answered, a further copy is a duplicate
    assert [(p.reply_to_id, p.status) for p in bc.posts] == [("1700000000600", 500), ("1700000000600", 200)]
    assert bc.posts[1].activity["text"] == "No open tasks."


def test_a_body_over_256_kib_is_refused_before_parsing(client: TestClient, bc: BotConnector) -> None:
    big = bc.message("open tasks " + "x" * (256 * 1024))
    r = post(client, big)
    assert r.status_code == 413 and r.json() == {"detail": "body: over 262144 bytes"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body is counted as it arrives
        raw = json.dumps(big).encode()
        for i in range(0, len(raw), 64 * 1024):
            yield raw[i:i + 64 * 1024]

    r = client.post("/api/messages", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    just_fits = bc.message("open tasks", id="1700000000700")
    just_fits["padding"] = "x" * (256 * 1024 - len(json.dumps(just_fits)) - len(', "padding": ""'))
    assert len(json.dumps(just_fits)) == 256 * 1024
    assert post(client, just_fits).status_code == 202
    assert [p.reply_to_id for p in bc.posts] == ["1700000000700"]


def test_an_unlinked_account_is_told_how_to_get_linked_and_sees_no_data(ctx: Context, bc: BotConnector) -> None:
    made = teams_ctx(ctx)  # [staff] unlinked_read is off: the default
    apply(made, CATALOG)
    client = TestClient(create_app(made, background_applier=False))
    assert post(client, bc.message("who's waiting on KTL-200?", aad="aad-stranger")).status_code == 202
    [answer] = bc.wait_for(1)
    text = answer.activity["text"]
    assert "not linked" in text and "--teams-user aad-stranger" in text
    assert "1042" not in text and "KTL-200" not in text and "Ada" not in text
    pressed = post(client, bc.action_execute("show_waiting", {"action": "show_waiting", "value": "KTL-200"},
                                             aad="aad-stranger")).json()
    card_text = pressed["value"]["body"][0]["text"]
    assert "not linked" in card_text and "1042" not in card_text
    with unit_of_work(made.engine) as conn:  # an admin links the account: the same question is answered
        channels.add_staff(conn, "S-eve", ["procurement"], made.now(), teams_user="aad-stranger")
    assert post(client, bc.message("who's waiting on KTL-200?", aad="aad-stranger")).status_code == 202
    assert "order *1042*" in bc.wait_for(2)[1].activity["text"]


def test_anonymous_mode_with_credentials_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"teams\.anonymous"):
        load_settings(teams={"anonymous": True, "app_id": "x", "app_password": "y"})


def test_action_execute_answers_with_a_card_and_closing_a_task_needs_a_role(client: TestClient, bc: BotConnector,
                                                                          dev: Context) -> None:
    shown = post(client, bc.action_execute("show_waiting", {"action": "show_waiting", "value": "KTL-200"}))
    assert shown.status_code == 200
    body = shown.json()
    assert body["statusCode"] == 200 and body["type"] == CONTENT_TYPE
    assert body["value"]["type"] == "AdaptiveCard" and body["value"]["version"] == "1.5"
    assert body["value"]["body"][0]["text"].startswith("*1 line(s) wait for KTL-200*")

    task_id = open_task(dev)
    press = {"action": "complete_task", "value": str(task_id)}
    refused = post(client, bc.action_execute("complete_task", press)).json()
    # Markdown-escaped for Teams ("\\_" shows as "_").
    assert refused["value"]["body"][0]["text"] == ("Only admin or ops or warehouse\\_manager may close inventory "
                                                   "check tasks.")
    with unit_of_work(dev.engine) as conn:
        channels.add_staff(conn, "S-ops", ["ops"], dev.now(), teams_user="aad-user-1")
    done = post(client, bc.action_execute("complete_task", press)).json()
    assert done["value"]["body"][0]["text"] == f"Task #{task_id} (Count kettles) is done."
    with dev.engine.connect() as conn:
        assert conn.execute(select(t.tasks.c.status).where(t.tasks.c.id == task_id)).scalar_one() == "done"
    assert bc.posts == []  # invokes are answered in the HTTP response, never by a separate post


def test_a_malformed_activity_is_a_bad_request_naming_the_field(client: TestClient, bc: BotConnector) -> None:
    bad = {**bc.message("hi"), "conversation": "not-an-object"}
    r = post(client, bad)
    assert r.status_code == 400 and r.json()["error"].startswith("conversation")
    r = client.post("/api/messages", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.text
    assert bc.posts == []


def test_an_unknown_button_is_a_bad_request_naming_the_field(client: TestClient, bc: BotConnector) -> None:
    got = post(client, bc.action_execute("drop_tables", {"action": "drop_tables", "value": "x"})).json()
    assert got["statusCode"] == 400 and "data.action" in got["value"]["message"]


def test_action_submit_fallback_is_answered_like_the_button(client: TestClient, bc: BotConnector) -> None:
    msg = bc.message("", value={"action": "show_waiting", "value": "KTL-200"})
    assert "text" not in msg
    assert post(client, msg).status_code == 202
    [reply] = bc.wait_for(1)
    assert reply.activity["text"].startswith("*1 line(s) wait for KTL-200*")


def test_a_team_alert_goes_out_proactively_as_an_adaptive_card(client: TestClient, bc: BotConnector,
                                                              dev: Context) -> None:
    assert post(client, bc.members_added(conversation=OPS)).status_code == 202  # the app is added to the team
    apply(dev, [ev("po", "po.updated", {"po_id": "PO-1", "supplier_id": "S", "warehouse_id": "LDS",
                                        "expected_at": "2026-03-06", "lines": [{"sku": "KTL-200", "qty": 30}]}),
                ev("po2", "po.updated", {"po_id": "PO-1", "supplier_id": "S", "warehouse_id": "LDS",
                                         "expected_at": "2026-03-06", "lines": [{"sku": "KTL-200", "qty": 1}]},
                   at="2026-03-02T08:59:30Z")])
    with dev.engine.connect() as conn:
        [row] = conn.execute(select(t.outbox).where(t.outbox.c.kind == "inventory_task")).all()
    assert (row.channel, row.recipient) == ("teams", OPS)
    assert asyncio.run(drain_outbox(dev)) >= 1

    [alert] = bc.wait_for(1)
    assert alert.path == f"/v3/conversations/{OPS}/activities" and alert.reply_to_id is None
    activity = alert.activity
    # The text fallback: the plain body, escaped (Teams reads it as Markdown); the feed's summary as it is.
    assert activity["text"] == escape_markdown(row.body) and activity["summary"] == row.body[:200]
    [attachment] = activity["attachments"]
    assert attachment["contentType"] == CONTENT_TYPE
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.5")
    assert card["body"][0] == {"type": "TextBlock", "text": row.payload["title"], "weight": "Bolder",
                               "size": "Medium", "wrap": True}
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["SKU"] == "KTL-200"
    task_id = row.payload["actions"][0]["value"]
    assert [(a["type"], a["verb"], a["data"]) for a in card["actions"]] == [
        ("Action.Execute", "task_take", {"action": "task_take", "value": task_id}),  # docs/tasks.md
        ("Action.Execute", "task_finish", {"action": "task_finish", "value": task_id}),
        ("Action.Execute", "task_reassign", {"action": "task_reassign", "value": task_id}),
    ]
    assert all(a["fallback"] == {"type": "Action.Submit", "title": a["title"], "data": a["data"]}
               for a in card["actions"])
    with dev.engine.connect() as conn:
        sent = conn.execute(select(t.outbox.c.status, t.outbox.c.provider_id).where(t.outbox.c.id == row.id)).one()
    assert sent.status == "sent" and sent.provider_id == f"{OPS}|activity-1"  # conversation|activity: editable


def test_a_burst_to_one_conversation_keeps_the_rate(ctx: Context, bc: BotConnector) -> None:
    made = teams_ctx(ctx, staff={"team": {"channels": ["teams"], "teams_conversation": OPS}},
                     notify={"rules": {"ops_digest": {"enabled": False}}, "rate_per_destination": {"teams": 5.0}})
    apply(made, CATALOG)
    client = TestClient(create_app(made, background_applier=False))
    assert post(client, bc.members_added(conversation=OPS)).status_code == 202
    with unit_of_work(made.engine) as conn:
        for sku in ("A-1", "A-2", "A-3", "A-4"):
            tasks.open_task(conn, made, "procurement_review", sku=sku, title=f"Expedite {sku}", detail={},
                            cause=f"test:{sku}")
    asyncio.run(drain_outbox(made))  # the catalog's own notices go to the console
    arrivals = [p.monotonic for p in bc.wait_for(4) if p.conversation_id == OPS]
    assert len(arrivals) == 4 and len(bc.posts) == 4
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # 5 sends/s to one conversation ([notify] rate_per_destination): at least ~0.2 s apart (a lower bound only).
    assert min(gaps) >= 0.15 and arrivals[-1] - arrivals[0] >= 0.55


# -- the sender's failures ----------------------------------------------------------------------------

def alert(recipient: str = OPS, payload: dict[str, Any] | None = None) -> Outgoing:
    card = {"kind": "inventory_task", "title": "Task #7: count KTL-200", "text": "Count the kettles in Leeds.",
            "fields": [{"label": "Task", "value": "#7"}], "topic": "task:7",
            "actions": [{"id": "complete_task", "label": "Mark done", "value": "7"}]}
    return Outgoing(id=1, channel="teams", recipient=recipient, kind="inventory_task", body="Task #7: count KTL-200",
                    idempotency_key="k-1", payload=card if payload is None else payload)


def failure(sender: TeamsSender, msg: Outgoing) -> SendError:
    try:
        asyncio.run(sender.send(msg))
    except SendError as exc:
        return exc
    raise AssertionError("the send went through")


@pytest.fixture
def sender(client: TestClient, bc: BotConnector, dev: Context) -> TeamsSender:
    assert post(client, bc.members_added(conversation=OPS)).status_code == 202
    return TeamsSender(dev.settings.teams, dev.engine)


def test_sender_classifies_throttling_removal_and_server_errors(sender: TeamsSender, bc: BotConnector) -> None:
    bc.fail_next(1, 429, retry_after="3")
    throttled = failure(sender, alert())
    assert isinstance(throttled, RetryableError) and throttled.reason == "rate_limited"
    assert throttled.retry_after == 3.0
    bc.fail_next(1, 403)
    removed = failure(sender, alert())
    assert isinstance(removed, PermanentError) and removed.reason == "bot_removed"
    bc.fail_next(1, 404)
    assert failure(sender, alert()).reason == "conversation_gone"
    bc.fail_next(1, 502)
    assert isinstance(failure(sender, alert()), RetryableError)
    sent = asyncio.run(sender.send(alert(payload={})))  # a chat reply row: text only
    assert sent.provider_id == f"{OPS}|activity-5"
    assert "attachments" not in bc.posts[-1].activity and bc.posts[-1].activity["text"] == "Task #7: count KTL-200"
    assert [p.status for p in bc.posts] == [429, 403, 404, 502, 200]


def test_sender_without_a_reference_fails_permanently(sender: TeamsSender, bc: BotConnector) -> None:
    missing = failure(sender, alert(recipient="aad-never-seen"))
    assert isinstance(missing, PermanentError) and missing.reason == "no_conversation_reference"
    assert bc.posts == []


# -- production mode: Bot Framework JWTs --------------------------------------------------------------

PROD_TEAMS = {"app_id": APP_ID, "app_password": "s3cret", "tenant_id": TENANT}


@pytest.fixture
def prod_ctx(ctx: Context, bc: BotConnector, monkeypatch: pytest.MonkeyPatch) -> Context:
    """App id, tenant and secret set; tokens fetched from the fake's token endpoint; the default sender of
    bc.message() linked to a staff member in the configuration.

    The SDK has no setting for the JWKS address (it is fixed to login.botframework.com for Bot Framework
    tokens), so its per-address key client for that address is pointed at the fake's /keys instead.
    """
    made = teams_ctx(ctx, {**PROD_TEAMS, "login_base_url": bc.url},
                     staff={"members": {"S-ada": {"roles": ["ops"], "teams_user": "aad-user-1"}}})
    apply(made, CATALOG)
    cache = jwt_token_validator.JwtTokenValidator._jwk_client_manager._cache
    monkeypatch.setitem(cache, AuthenticationConstants.PUBLIC_ABS_JWKS_URL,
                        jwt_token_validator._JwkClientCacheEntry(PyJWKClient(bc.jwks_url), threading.Lock()))
    return made


@pytest.fixture
def prod(prod_ctx: Context) -> TestClient:
    return TestClient(create_app(prod_ctx, background_applier=False))


def test_production_refuses_a_request_without_a_token(prod: TestClient, bc: BotConnector) -> None:
    r = post(prod, bc.message("open tasks"))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert bc.posts == []


def test_production_refuses_garbage_forged_expired_and_misaddressed_tokens(prod: TestClient,
                                                                           bc: BotConnector) -> None:
    forged = SigningKey(kid=bc.key.kid).token(APP_ID, service_url=bc.url)  # same key id, another key
    expired = bc.key.token(APP_ID, service_url=bc.url, issued_at=0)
    other_bot = bc.key.token("11111111-2222-3333-4444-555555555555", service_url=bc.url)
    for token in ("not-a-jwt", forged, expired, other_bot):
        assert post(prod, bc.message("open tasks"), Authorization=f"Bearer {token}").status_code == 401, token
    assert post(prod, bc.message("open tasks"), Authorization="Basic Ym90OnB3").status_code == 401
    assert bc.posts == []


def test_production_answers_a_valid_token_and_replies_with_a_bot_token(prod: TestClient, bc: BotConnector) -> None:
    token = bc.key.token(APP_ID, service_url=bc.url)
    assert post(prod, bc.message("open tasks"), Authorization=f"Bearer {token}").status_code == 202
    [reply] = bc.wait_for(1)
    assert reply.activity["text"] == "No open tasks."
    assert reply.authorization is not None and reply.authorization.startswith("Bearer bot-token-")
    grant = bc.tokens[0]
    assert (grant["grant_type"], grant["client_id"], grant["client_secret"]) == ("client_credentials", APP_ID,
                                                                                  "s3cret")
    assert grant["scope"] == "https://api.botframework.com/.default"


def test_production_refuses_another_tenants_activity(prod: TestClient, bc: BotConnector) -> None:
    msg = bc.message("open tasks")
    msg["channelData"]["tenant"]["id"] = msg["conversation"]["tenantId"] = "99999999-0000-0000-0000-000000000000"
    r = post(prod, msg, Authorization=f"Bearer {bc.key.token(APP_ID, service_url=bc.url)}")
    assert r.status_code == 403 and "channelData.tenant.id" in r.text
    assert bc.posts == [] and bc.tokens == []


def test_production_refuses_an_activity_that_names_no_tenant(prod: TestClient, bc: BotConnector) -> None:
    msg = bc.message("open tasks")
    del msg["channelData"]["tenant"], msg["conversation"]["tenantId"]
    r = post(prod, msg, Authorization=f"Bearer {bc.key.token(APP_ID, service_url=bc.url)}")
    assert r.status_code == 403 and "channelData.tenant.id: missing" in r.text
    half = bc.message("open tasks")  # one place names ours, the other another tenant
    half["conversation"]["tenantId"] = "99999999-0000-0000-0000-000000000000"
    assert post(prod, half, Authorization=f"Bearer {bc.key.token(APP_ID, service_url=bc.url)}").status_code == 403
    assert bc.posts == [] and bc.tokens == []


def test_production_refuses_a_token_issued_for_another_service_url(prod: TestClient, bc: BotConnector) -> None:
    """A valid token is replayed with the activity's serviceUrl pointing elsewhere: the reply (and the bot
    token it carries) must not go there, nor may a token be fetched for it."""
    token = bc.key.token(APP_ID, service_url=bc.url)
    with BotConnector() as evil:
        for elsewhere in (evil.url, f"http://localhost:{evil.port}/", "https://smba.trafficmanager.net/amer/"):
            msg = {**bc.message("open tasks"), "serviceUrl": elsewhere}
            r = post(prod, msg, Authorization=f"Bearer {token}")
            assert r.status_code == 401 and "serviceUrl" in r.json()["error"], elsewhere
        # Signed for the other host as well: that host is still not a Bot Connector (the SDK's host validator).
        for elsewhere in (evil.url, f"http://localhost:{evil.port}/"):
            msg = {**bc.message("open tasks"), "serviceUrl": elsewhere}
            r = post(prod, msg, Authorization=f"Bearer {bc.key.token(APP_ID, service_url=elsewhere)}")
            assert r.status_code == 401, elsewhere
        assert evil.posts == [] and evil.tokens == []
    assert bc.posts == [] and bc.tokens == []
    # The same token with its own serviceUrl is answered.
    assert post(prod, bc.message("open tasks"), Authorization=f"Bearer {token}").status_code == 202
    assert bc.wait_for(1)[0].activity["text"] == "No open tasks."


def test_production_sender_posts_only_to_a_bot_connector_host(prod_ctx: Context, bc: BotConnector) -> None:
    with BotConnector() as evil:
        with unit_of_work(prod_ctx.engine) as conn:  # e.g. stored before the check existed
            for key, url in (("19:evil@thread.tacv2", evil.url), (OPS, bc.url)):
                chat_state.save_ref(conn, "teams", key, {
                    "serviceUrl": url, "channelId": "msteams", "conversation": {"id": key},
                    "bot": {"id": BOT_ID}}, prod_ctx.now())
        sender = TeamsSender(prod_ctx.settings.teams, prod_ctx.engine)
        refused = failure(sender, alert(recipient="19:evil@thread.tacv2"))
        assert isinstance(refused, PermanentError) and refused.reason == "bad_service_url"
        assert evil.posts == [] and evil.tokens == [] and bc.tokens == []
        sent = asyncio.run(sender.send(alert()))
    assert sent.provider_id == f"{OPS}|activity-1"
    assert bc.posts[0].authorization is not None and bc.posts[0].authorization.startswith("Bearer bot-token-")


# -- the app manifest -----------------------------------------------------------------------------------

def _unicode_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    # The schema's patterns use \\p{L} (ECMA-262 with Unicode classes), which Python's re lacks; regex has it.
    if validator.is_type(instance, "string") and not regex.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


ManifestValidator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"pattern": _unicode_pattern})


def test_manifest_is_valid_and_lists_the_commands_the_bot_knows() -> None:
    manifest = json.loads((ROOT / "manifest.json").read_text())
    schema = json.loads((ROOT / "tests/fixtures/teams/MicrosoftTeams.schema.json").read_text())
    jsonschema.Draft4Validator(jsonschema.Draft4Validator.META_SCHEMA).validate(schema)  # a schema, whole
    ManifestValidator(schema).validate(manifest)
    # draft-04 has no "const": the version the schema is for is checked here.
    assert manifest["manifestVersion"] == schema["properties"]["manifestVersion"]["const"]
    with pytest.raises(ValidationError, match=r"does not match"):  # the validator does bite
        ManifestValidator(schema).validate({**manifest, "bots": [{**manifest["bots"][0], "botId": "{{BOT_ID}}"}]})
    [bot] = manifest["bots"]
    assert set(bot["scopes"]) == {"personal", "team", "groupChat"}
    for listing in bot["commandLists"]:
        titles = [c["title"] for c in listing["commands"]]
        assert len(titles) == len(set(titles))
    # Every command is a phrase the intents understand as the intent it stands for.
    from intents import Asker, Catalog, understand
    from intents.model import Named

    catalog = Catalog(products=(Named("KTL-200", "Blue kettle"),))
    meant = {understand(c["title"], catalog, Asker("staff")).intent
             for listing in bot["commandLists"] for c in listing["commands"]}
    assert meant == {*STAFF_INTENTS, "help"}
    # What a command needs is said as the code has it (services.chat_staff), no more and no less.
    from services.chat_staff import ACTING_ROLES
    needs = {understand(c["title"], catalog, Asker("staff")).intent: c["description"]
             for listing in bot["commandLists"] for c in listing["commands"]}
    assert all(role in needs["run_allocation"] for role in ACTING_ROLES)
    assert all(role in needs["complete_task"] for role in ACTING_ROLES) and "role that works on it" in \
        needs["complete_task"]
    assert "linked" in manifest["description"]["full"]
    for icon in manifest["icons"].values():
        assert (ROOT / icon).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_an_alert_to_a_person_goes_to_their_one_to_one_chat(client: TestClient, bc: BotConnector,
                                                             dev: Context) -> None:
    assert post(client, bc.message("hello", conversation="a:1chat-ada", aad="aad-ada")).status_code == 202
    sender = TeamsSender(dev.settings.teams, dev.engine)
    sent = asyncio.run(sender.send(alert(recipient="aad-ada")))
    last = bc.posts[-1]
    assert last.path == "/v3/conversations/a:1chat-ada/activities" and sent.provider_id == "a:1chat-ada|activity-2"
    assert last.activity["attachments"][0]["content"]["actions"][0]["verb"] == "complete_task"
