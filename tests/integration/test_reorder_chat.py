"""A reorder suggestion decided from chat, on both stores: the card the worker posts to procurement in Slack
(fake Web API) and Teams (fake Bot Connector), its Approve / Reject buttons pressed as each platform sends
them, the card redrawn with the outcome, and the role check."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from backorder.config import load_settings
from bot.api import create_app
from bot.slack.actions import ACTION_IDS
from notifiers.adaptive_cards import CONTENT_TYPE
from notifiers.senders.teams import split_provider_id
from services import reorder
from services.context import Context
from services.inbox import drain, store_events
from services.worker import drain_outbox
from store import tables as t
from tests.fakes.bot_connector import BotConnector
from tests.fakes.slack_api import FakeSlack
from tests.slack_bot import SECRET, TOKEN, link, signer
from tests.slack_bot import post as slack_post
from tests.teams_bot import post as teams_post
from tests.teams_bot import teams_ctx

PROCUREMENT = "C0PROC123"
OPS = "19:procurement@thread.tacv2"


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": "2026-03-01T10:00:00Z", "source": "test",
            "data": data}


# Leeds holds 3 of a point of 10; transfers are off, so it is a purchase of 20 from ACME.
SEED = [
    ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
    ev("s1", "supplier.upserted", {"supplier_id": "ACME", "name": "Acme", "lead_time_days": 10}),
    ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40, "supplier_id": "ACME"}),
    ev("a1", "inventory.adjusted", {"sku": "KTL-200", "warehouse_id": "LDS", "on_hand": 3}),
]
REORDER = {"transfer_first": False, "overrides": {"KTL-200": {"reorder_point": 10, "reorder_qty": 20}}}


def seeded(ctx: Context) -> int:
    _, ids = store_events(ctx, SEED)
    drain(ctx, ids)
    [task_id] = reorder.check(ctx).opened
    return task_id


def task(ctx: Context, task_id: int) -> Any:
    with ctx.engine.connect() as conn:
        return conn.execute(select(t.tasks).where(t.tasks.c.id == task_id)).mappings().one()


def card_row(ctx: Context, channel: str) -> Any:
    with ctx.engine.connect() as conn:
        [row] = conn.execute(select(t.outbox).where(t.outbox.c.kind == "purchase_suggestion",
                                                    t.outbox.c.channel == channel)).mappings().all()
    assert row["status"] == "sent", row["error"]
    return row


# -- Slack ------------------------------------------------------------------------------------------
@pytest.fixture
def sctx(ctx: Context, slack: FakeSlack) -> Context:
    settings = load_settings(
        database_url=ctx.settings.database_url, reorder=REORDER,
        slack={"bot_token": TOKEN, "signing_secret": SECRET, "api_base_url": slack.api_url},
        staff={"procurement": {"channels": ["slack"], "slack_channel": PROCUREMENT}},
        notify={"rate_per_destination": {"slack": 20.0}, "rules": {"ops_digest": {"enabled": False}}})
    return Context(engine=ctx.engine, settings=settings, clock=ctx.clock)


@pytest.fixture
def sclient(sctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(sctx, background_applier=False)) as c:  # Bolt works after its ack
        link(sctx, "pat", ["procurement"], "U0PAT")
        link(sctx, "cy", ["customer_service"], "U0CY")
        yield c


def click(client: TestClient, slack: FakeSlack, user: str, verb: str, task_id: int, card: tuple[str, str]) -> None:
    r = slack_post(client, signer.block_actions(user_id=user, action_id=f"bo:suggestion_{verb}", value=str(task_id),
                                                channel_id=card[0], message_ts=card[1],
                                                response_url=slack.response_url(f"{user}-{verb}")))
    assert r.status_code == 200 and r.text == ""


def test_slack_approve_button_decides_once_and_redraws_the_card(sctx: Context, sclient: TestClient,
                                                                slack: FakeSlack) -> None:
    task_id = seeded(sctx)
    asyncio.run(drain_outbox(sctx))
    row = card_row(sctx, "slack")
    channel, _, ts = row["provider_id"].partition(":")
    assert channel == PROCUREMENT
    [message] = [c for c in slack.calls("chat.postMessage") if c.args.get("channel") == PROCUREMENT]
    buttons = next(b for b in message.args["blocks"] if b["type"] == "actions")["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("bo:suggestion_approve", str(task_id)),
                                                              ("bo:suggestion_reject", str(task_id))]
    assert all(ACTION_IDS.match(b["action_id"]) for b in buttons)

    click(sclient, slack, "U0CY", "approve", task_id, (channel, ts))  # no procurement role: told privately
    [refused] = slack.wait_for("chat.postEphemeral")
    assert refused.args["user"] == "U0CY" and "procurement" in refused.args["text"]
    assert task(sctx, task_id)["status"] == "open" and slack.calls("chat.update") == []

    click(sclient, slack, "U0PAT", "approve", task_id, (channel, ts))
    [update] = slack.wait_for("chat.update")
    assert (update.args["channel"], update.args["ts"]) == (channel, ts)
    assert "actions" not in [b["type"] for b in update.args["blocks"]]
    assert "Approved by pat at " in str(update.args["blocks"])
    decided = task(sctx, task_id)
    assert (decided["status"], decided["outcome"], decided["closed_by"]) == ("done", "approved", "pat")

    click(sclient, slack, "U0PAT", "reject", task_id, (channel, ts))  # too late: the true outcome, privately
    told = slack.wait_for("chat.postEphemeral", 2)[1]
    assert told.args["user"] == "U0PAT" and told.args["text"].startswith("already approved by pat at ")
    assert task(sctx, task_id)["outcome"] == "approved"


# -- Teams ------------------------------------------------------------------------------------------
PAT = "aad-pat"


@pytest.fixture
def tctx(ctx: Context) -> Context:
    return teams_ctx(ctx, reorder=REORDER,
                     staff={"procurement": {"channels": ["teams"], "teams_conversation": OPS},
                            "members": {"S-pat": {"roles": ["procurement"], "teams_user": PAT}}})


def test_teams_action_execute_approves_and_answers_the_decided_card(tctx: Context, bc: BotConnector) -> None:
    client = TestClient(create_app(tctx, background_applier=False))
    assert teams_post(client, bc.members_added(conversation=OPS)).status_code == 202
    task_id = seeded(tctx)
    asyncio.run(drain_outbox(tctx))
    row = card_row(tctx, "teams")
    [posted] = [p for p in bc.posts if p.conversation_id == OPS and p.activity.get("attachments")]
    actions = posted.activity["attachments"][0]["content"]["actions"]
    assert [(a["verb"], a["data"]["value"]) for a in actions] == [("suggestion_approve", str(task_id)),
                                                                  ("suggestion_reject", str(task_id))]
    data = {"action": "suggestion_approve", "value": str(task_id)}
    press = bc.action_execute("suggestion_approve", data, conversation=OPS, conversation_type="channel",
                              user=f"29:{PAT}", aad=PAT, name="Pat", reply_to=split_provider_id(row["provider_id"])[1])
    r = teams_post(client, press)
    assert r.status_code == 200
    body = r.json()
    assert (body["statusCode"], body["type"]) == (200, CONTENT_TYPE)
    card = body["value"]
    assert "actions" not in card and "Approved by S-pat at " in str(card["body"]).replace("\\", "")
    assert task(tctx, task_id)["outcome"] == "approved"
    again = teams_post(client, bc.action_execute("suggestion_reject", {**data, "action": "suggestion_reject"},
                                                  conversation=OPS, conversation_type="channel", user=f"29:{PAT}",
                                                  aad=PAT, name="Pat"))
    assert "already approved by S-pat" in str(again.json()["value"]["body"]).replace("\\", "")
    # The worker edits the posted card in place too (an approval_update row).
    asyncio.run(drain_outbox(tctx))
    with tctx.engine.connect() as conn:
        [upd] = conn.execute(select(t.outbox).where(t.outbox.c.kind == "approval_update")).mappings().all()
    assert upd["status"] == "sent" and upd["payload"]["replace"] == row["provider_id"]
