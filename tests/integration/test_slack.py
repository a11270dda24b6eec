"""The Slack front door and sender on both stores, against a fake Slack Web API on 127.0.0.1.

Inbound requests are built and signed as Slack sends them (tests/fakes/slack_api.py SlackSigner); what the
app says back arrives at the fake through slack_sdk, as it would at slack.com.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from fastapi.testclient import TestClient
from sqlalchemy import select

from backorder.config import load_settings
from bot.api import create_app
from bot.slack import EVENTS_PATH
from bot.slack.actions import ACTION_IDS
from bot.slack.commands import COMMANDS
from bot.slack.door import Door
from bot.slack.events import EVENTS
from bot.slack.home import home_view
from notifiers.senders.base import Outgoing, PermanentError, RetryableError, SendError, Sent
from notifiers.senders.slack import SlackSender
from services.channels import add_staff, staff_user
from services.chat import ACTIONS
from services.context import Context
from services.inbox import drain, store_events
from services.tasks import open_task
from services.worker import drain_outbox
from store import tables as t
from store.db import unit_of_work
from tests.fakes._server import LoopbackServer
from tests.fakes.slack_api import BOT_USER, FakeSlack, SlackSigner
from tests.slack_bot import SECRET, TEAM_CHANNEL, TOKEN, link, post, signer, slack_context


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": "2026-03-02T08:00:00Z", "source": "t",
            "data": data}


SEED = [
    ev("w", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
    ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40, "lead_time_days": 9}),
    ev("p2", "product.upserted", {"sku": "TST-4", "name": "Four-slice toaster", "price": 30}),
    ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "region": "north"}),
    ev("o1", "order.placed", {"order_id": "1042", "customer_id": "C1", "lines": [
        {"line_id": "1", "sku": "KTL-200", "qty": 2, "unit_price": 40}]}),
]


@pytest.fixture
def sctx(ctx: Context, slack: FakeSlack) -> Context:
    return slack_context(ctx, slack, rate=5.0)


@pytest.fixture
def client(sctx: Context) -> Iterator[TestClient]:
    # As a context manager the app's event loop outlives each request: Bolt answers after its ack.
    with TestClient(create_app(sctx, background_applier=False)) as c:
        assert c.post("/events", json=SEED).status_code == 200
        link(sctx, "alice", ["customer_service"], "U0ALICE")  # U0ALICE asks most questions below
        yield c


def dm(text: str, user: str = "U0ALICE", ts: str = "1767225600.000100") -> dict[str, Any]:
    return {"type": "message", "channel": "D0ALICE", "user": user, "text": text, "ts": ts, "event_ts": ts,
            "channel_type": "im", "client_msg_id": f"m-{ts}", "team": "T0BACKORD"}


def open_tasks(ctx: Context, *skus: str) -> list[int]:
    ids = []
    with unit_of_work(ctx.engine) as conn:
        for sku in skus:
            task_id = open_task(conn, ctx, "procurement_review", sku=sku, title=f"Expedite {sku}",
                                detail={"reason": "waiting"}, cause=f"test:{sku}", severity="high")
            assert task_id is not None
            ids.append(task_id)
    return ids


def task_status(ctx: Context, task_id: int) -> str:
    with ctx.engine.connect() as conn:
        return str(conn.execute(select(t.tasks.c.status).where(t.tasks.c.id == task_id)).scalar_one())


# -- the door: signatures -------------------------------------------------------------------------
def test_a_signed_request_is_accepted(client: TestClient, slack: FakeSlack) -> None:
    assert post(client, signer.event(dm("open tasks"), event_id="EvOK")).status_code == 200
    assert slack.wait_for("chat.postMessage")[0].args["channel"] == "D0ALICE"


def test_unsigned_wrong_tampered_and_stale_requests_get_401(client: TestClient, slack: FakeSlack) -> None:
    body, headers = signer.event(dm("open tasks"), event_id="EvBAD")
    unsigned = {"Content-Type": "application/json"}
    assert client.post("/slack/events", content=body, headers=unsigned).status_code == 401
    wrong = SlackSigner("not-the-secret").event(dm("open tasks"), event_id="EvBAD")
    assert post(client, wrong).status_code == 401
    tampered = body.replace(b"open tasks", b"allocate KTL-200")
    assert client.post("/slack/events", content=tampered, headers=headers).status_code == 401
    stale = signer.event(dm("open tasks"), event_id="EvBAD", timestamp=int(time.time()) - 301)
    assert post(client, stale).status_code == 401
    # None of them reached a listener: the Web API heard nothing (not even auth.test).
    assert slack.calls() == []


def test_url_verification_echoes_the_challenge(client: TestClient) -> None:
    r = post(client, signer.url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"))
    assert r.status_code == 200 and r.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_slack_is_not_mounted_when_not_configured(ctx: Context) -> None:
    with TestClient(create_app(ctx, background_applier=False)) as c:
        assert c.post("/slack/events", content=b"{}").status_code == 404


# -- the door: questions ----------------------------------------------------------------------------
def test_a_direct_message_is_answered_from_the_store(client: TestClient, slack: FakeSlack, sctx: Context) -> None:
    r = post(client, signer.event(dm("who's waiting on KTL-200?"), event_id="EvDM1"))
    assert r.status_code == 200
    sent = slack.wait_for("chat.postMessage")[0]
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.args["channel"] == "D0ALICE" and "thread_ts" not in sent.args
    assert "*1 line(s) wait for KTL-200*" in sent.args["text"] and "order *1042* (C1" in sent.args["text"]
    with sctx.engine.connect() as conn:
        seen = conn.execute(select(t.inbound_messages.c.message_id, t.inbound_messages.c.sender)
                            .where(t.inbound_messages.c.channel == "slack")).all()
        state = conn.execute(select(t.conversations.c.key)).scalars().all()
    assert [tuple(s) for s in seen] == [("EvDM1", "U0ALICE")]
    assert "slack:staff:alice" in state  # the staff member's conversation, kept per channel


def test_a_mention_is_answered_in_a_thread_without_the_mention(client: TestClient, slack: FakeSlack) -> None:
    mention = {"type": "app_mention", "user": "U0ALICE", "text": f"<@{BOT_USER}> open tasks please",
               "ts": "1767225700.000200", "channel": "C0OPS", "event_ts": "1767225700.000200"}
    assert post(client, signer.event(mention, event_id="EvMention")).status_code == 200
    sent = slack.wait_for("chat.postMessage")[0]
    assert sent.args["channel"] == "C0OPS" and sent.args["thread_ts"] == "1767225700.000200"
    assert sent.args["text"] == "No open tasks."


def test_a_retried_event_is_acked_and_answered_once(client: TestClient, slack: FakeSlack) -> None:
    first = signer.event(dm("open tasks"), event_id="EvRetry")
    assert post(client, first).status_code == 200
    slack.wait_for("chat.postMessage", 1)
    retry = signer.event(dm("open tasks"), event_id="EvRetry", retry_num=1)
    assert post(client, retry).status_code == 200
    # A later, different event is answered; by then a wrongly answered retry would have been posted too.
    assert post(client, signer.event(dm("open tasks", ts="1767225600.000300"), event_id="EvNext")).status_code == 200
    assert len(slack.wait_for("chat.postMessage", 2)) == 2
    assert len(slack.calls("chat.postMessage")) == 2


def seen(ctx: Context, event_id: str) -> bool:
    im = t.inbound_messages
    with ctx.engine.connect() as conn:
        return conn.execute(select(im.c.id).where(im.c.channel == "slack", im.c.message_id == event_id)).first() \
            is not None


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll until `condition` holds (the app works after its ack, in its own loop); fail naming `what`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.02)


@pytest.mark.parametrize("failure", ["http_500", "fatal_error"])
def test_an_event_whose_answer_failed_is_answered_on_slacks_retry(client: TestClient, slack: FakeSlack,
                                                                  sctx: Context, failure: str) -> None:
    slack.fail_next("chat.postMessage", failure)
    assert post(client, signer.event(dm("open tasks"), event_id="EvFail")).status_code == 200
    slack.wait_for("chat.postMessage")  # refused
    wait_until(lambda: not seen(sctx, "EvFail"), "the failed delivery forgotten")
    retry = signer.event(dm("open tasks"), event_id="EvFail", retry_num=1)
    assert post(client, retry).status_code == 200
    answered = slack.wait_for("chat.postMessage", 2)[1]
    assert answered.args["channel"] == "D0ALICE" and answered.args["text"] == "No open tasks."
    assert seen(sctx, "EvFail")  # answered now: a further retry is dropped again
    assert post(client, signer.event(dm("open tasks"), event_id="EvFail", retry_num=2)).status_code == 200
    assert post(client, signer.event(dm("open tasks", ts="1767225600.000400"), event_id="EvAfter")).status_code == 200
    assert len(slack.wait_for("chat.postMessage", 3)) == 3
    assert len(slack.calls("chat.postMessage")) == 3


def test_a_body_over_256_kib_gets_413_before_bolt_reads_it(client: TestClient, slack: FakeSlack,
                                                          sctx: Context) -> None:
    big = dm("open tasks " + "x" * (256 * 1024))
    r = post(client, signer.event(big, event_id="EvBig"))  # correctly signed: only its size is wrong
    assert r.status_code == 413 and r.json() == {"detail": "body: over 262144 bytes"}
    body, headers = signer.event(big, event_id="EvBigChunked")
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))  # no Content-Length: counted as it arrives
    assert client.post(EVENTS_PATH, content=chunks, headers=headers).status_code == 413
    # Bolt saw neither: nothing recorded as delivered, and only the next, small, event is answered.
    assert post(client, signer.event(dm("open tasks"), event_id="EvSmall")).status_code == 200
    assert [c.args["text"] for c in slack.wait_for("chat.postMessage")] == ["No open tasks."]
    assert not seen(sctx, "EvBig") and not seen(sctx, "EvBigChunked") and seen(sctx, "EvSmall")


class GatedLLM(LoopbackServer):
    """An OpenAI-compatible chat completions endpoint that answers only once the test opens its gate:
    as slow as the test needs, with no timing in it."""

    name = "gated-llm"

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.asked: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def make_app(self) -> web.Application:
        async def completions(request: web.Request) -> web.Response:
            body = await request.json()
            self.asked.append(body)
            await asyncio.to_thread(self.gate.wait, 8.0)
            call = {"id": "call_1", "type": "function",
                    "function": {"name": "choose_intent", "arguments": json.dumps({"intent": "open_tasks"})}}
            return web.json_response({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1_770_000_000, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "tool_calls",
                             "message": {"role": "assistant", "content": None, "tool_calls": [call]}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})

        app = web.Application()
        app.router.add_post("/v1/chat/completions", completions)
        return app


def test_the_ack_returns_before_the_slow_answer_is_posted(sctx: Context, slack: FakeSlack) -> None:
    with GatedLLM() as model:
        settings = sctx.settings.model_copy(update={"llm": load_settings(
            database_url=sctx.settings.database_url,
            llm={"base_url": model.base_url, "model": "small", "api_key": "k", "timeout_seconds": 10}).llm})
        lctx = Context(engine=sctx.engine, settings=settings, clock=sctx.clock)
        try:
            with TestClient(create_app(lctx, background_applier=False)) as c:
                link(lctx, "alice", ["customer_service"], "U0ALICE")
                # The rules do not understand this; the model is asked, and holds its answer until the gate opens.
                r = post(c, signer.event(dm("anything on my plate today?"), event_id="EvSlow"))
                acked_at = time.monotonic()
                assert r.status_code == 200
                model.gate.set()
                posted = slack.wait_for("chat.postMessage")[0]
        finally:
            model.gate.set()
    assert posted.args["text"] == "No open tasks."  # the model's reading (open_tasks) was answered
    assert len(model.asked) == 1 and "anything on my plate today?" in model.asked[0]["messages"][1]["content"]
    assert acked_at < posted.monotonic  # Slack had its 200 before the answer was posted


def test_slash_command_answers_privately_and_empty_gives_help(client: TestClient, slack: FakeSlack) -> None:
    r = post(client, signer.command("/backorder", "who's waiting on KTL-200?", user_id="U0ALICE",
                                    response_url=slack.response_url("cmd1")))
    assert r.status_code == 200 and r.text == ""
    answer = slack.wait_for("response_url")[0]
    assert answer.args["_path"] == "/response/cmd1" and answer.args["response_type"] == "ephemeral"
    assert "*1 line(s) wait for KTL-200*" in answer.args["text"]
    helped = post(client, signer.command("/backorder", "  ", user_id="U0ALICE", response_url=slack.response_url("c2")))
    assert helped.status_code == 200
    assert helped.json()["response_type"] == "ephemeral" and "/backorder &lt;question&gt;" in helped.json()["text"]


# -- the door: buttons ------------------------------------------------------------------------------
def press(client: TestClient, slack: FakeSlack, user: str, action: str, value: str, key: str) -> Any:
    return post(client, signer.block_actions(user_id=user, action_id=f"bo:{action}", value=value,
                                             channel_id=TEAM_CHANNEL, message_ts="1767225800.000100",
                                             response_url=slack.response_url(key)))


def test_show_waiting_button_is_answered_in_the_alerts_thread(client: TestClient, slack: FakeSlack) -> None:
    assert press(client, slack, "U0ALICE", "show_waiting", "KTL-200", "b1").status_code == 200
    sent = slack.wait_for("chat.postMessage")[0]
    assert sent.args["channel"] == TEAM_CHANNEL and sent.args["thread_ts"] == "1767225800.000100"
    assert "*1 line(s) wait for KTL-200*" in sent.args["text"]


def test_mark_done_is_refused_unlinked_and_other_roles_and_done_for_ops(client: TestClient, slack: FakeSlack,
                                                                        sctx: Context) -> None:
    (task_id,) = open_tasks(sctx, "KTL-200")
    assert press(client, slack, "U0STRANGER", "complete_task", str(task_id), "b2").status_code == 200
    unlinked = slack.wait_for("chat.postMessage")[0]
    assert "is not linked" in unlinked.args["text"] and "--slack-user U0STRANGER" in unlinked.args["text"]
    # Alice is customer service: a procurement review is not hers to close.
    assert press(client, slack, "U0ALICE", "complete_task", str(task_id), "b3").status_code == 200
    refused = slack.wait_for("chat.postMessage", 2)[1]
    assert refused.args["text"] == "Only admin or ops or procurement may close procurement review tasks."
    assert task_status(sctx, task_id) == "open"
    link(sctx, "ops-carol", ["ops"], "U0CAROL")
    assert press(client, slack, "U0CAROL", "complete_task", str(task_id), "b4").status_code == 200
    done = slack.wait_for("chat.postMessage", 3)[2]
    assert done.args["text"] == f"Task #{task_id} (Expedite KTL-200) is done."
    assert task_status(sctx, task_id) == "done"


def test_store_values_in_answers_cannot_ping_the_channel_or_become_links(client: TestClient, slack: FakeSlack,
                                                                       sctx: Context) -> None:
    with unit_of_work(sctx.engine) as conn:
        task_id = open_task(conn, sctx, "handoff", sku=None, title="<!channel> call <https://evil.example|Approve>",
                            detail={}, cause="test:evil")
    assert post(client, signer.event(dm("open tasks"), event_id="EvEvil")).status_code == 200
    assert press(client, slack, "U0ALICE", "open_task", str(task_id), "b5").status_code == 200
    assert post(client, signer.command("/backorder", "open tasks", user_id="U0ALICE",
                                       response_url=slack.response_url("cmd5"))).status_code == 200
    answers = [c.args["text"] for c in slack.wait_for("chat.postMessage", 2)] + \
        [slack.wait_for("response_url")[0].args["text"]]
    for text in answers:
        assert f"#{task_id} &lt;!channel&gt; call &lt;https://evil.example|Approve&gt;" in text
        assert "<!channel>" not in text and "<https://" not in text


def test_an_unlinked_account_is_told_how_to_link_it_and_sees_no_data(client: TestClient, slack: FakeSlack,
                                                                    sctx: Context) -> None:
    open_tasks(sctx, "KTL-200")
    asked = dm("who's waiting on KTL-200?", user="U0STRANGER")
    assert post(client, signer.event(asked, event_id="EvStranger")).status_code == 200
    text = slack.wait_for("chat.postMessage")[0].args["text"]
    assert text == ("Your Slack account (U0STRANGER) is not linked to a member of the team yet, so I can't show "
                    "backorders, stock or tasks here. Ask an admin to run: backorder staff add &lt;your staff id&gt; "
                    "--role &lt;role&gt; --slack-user U0STRANGER")
    opened = {"type": "app_home_opened", "user": "U0STRANGER", "channel": "D0STRANGER", "tab": "home",
              "event_ts": "1767225900.000200"}
    assert post(client, signer.event(opened, event_id="EvStrangerHome")).status_code == 200
    view = slack.wait_for("views.publish")[0].args["view"]
    assert [b["type"] for b in view["blocks"]] == ["header", "section"]
    shown = view["blocks"][1]["text"]["text"]
    assert "is not linked to a member of the team yet" in shown
    assert "`backorder staff add &lt;your staff id&gt; --role &lt;role&gt; --slack-user U0STRANGER`" in shown
    everything = json.dumps(view)
    assert "1042" not in everything and "Expedite" not in everything and "bo:complete_task" not in everything
    with sctx.engine.connect() as conn:  # nothing was read for them, so no conversation was kept either
        keys = conn.execute(select(t.conversations.c.key)).scalars().all()
    assert not any("U0STRANGER" in k for k in keys)


# -- the door: App Home -----------------------------------------------------------------------------
def test_app_home_shows_backorders_and_tasks(client: TestClient, slack: FakeSlack, sctx: Context) -> None:
    (task_id,) = open_tasks(sctx, "KTL-200")
    with unit_of_work(sctx.engine) as conn:
        add_staff(conn, "ops-carol", ["ops"], sctx.now(), slack_user="U0CAROL")
    opened = {"type": "app_home_opened", "user": "U0CAROL", "channel": "D0CAROL", "tab": "home",
              "event_ts": "1767225900.000100"}
    assert post(client, signer.event(opened, event_id="EvHome")).status_code == 200
    published = slack.wait_for("views.publish")[0]
    assert published.args["user_id"] == "U0CAROL"
    view = published.args["view"]
    assert view["type"] == "home" and view["blocks"][0]["type"] == "header"
    texts = json.dumps(view["blocks"], ensure_ascii=False)
    assert "1 line(s) on backorder" in texts and "order *1042*: 2 × KTL-200 for C1" in texts
    assert f"#{task_id} Expedite KTL-200" in texts
    buttons = [b["accessory"] for b in view["blocks"] if "accessory" in b]
    assert buttons == [{"type": "button", "text": {"type": "plain_text", "text": "Mark done", "emoji": True},
                        "action_id": "bo:complete_task", "value": str(task_id)}]


def test_app_home_is_the_users_view_their_warehouse_and_their_tasks(client: TestClient, sctx: Context) -> None:
    (review,) = open_tasks(sctx, "KTL-200")
    with unit_of_work(sctx.engine) as conn:
        check = open_task(conn, sctx, "inventory_check", sku="TST-4", title="Count TST-4", detail={},
                          cause="test:count")
        add_staff(conn, "pat", ["procurement"], sctx.now(), slack_user="U0PAT", warehouse_id="BRS")
        add_staff(conn, "lee", ["warehouse_manager"], sctx.now(), slack_user="U0LEE", warehouse_id="LDS")
        pat = staff_user(conn, sctx.settings, "slack_user", "U0PAT")
        lee = staff_user(conn, sctx.settings, "slack_user", "U0LEE")
    assert pat is not None and lee is not None and lee.warehouse_id == "LDS"
    pat_view = json.dumps(home_view(sctx, pat)["blocks"], ensure_ascii=False)
    assert "Nothing is on backorder in BRS" in pat_view  # C1 is in the north: LDS's region, not BRS's
    assert f"#{review} Expedite KTL-200" in pat_view and "Count TST-4" not in pat_view
    lee_view = json.dumps(home_view(sctx, lee)["blocks"], ensure_ascii=False)
    assert "1 line(s) on backorder* in LDS" in lee_view and "order *1042*" in lee_view
    assert f"#{check} Count TST-4" in lee_view and "Expedite KTL-200" not in lee_view
    # Each may close the tasks of their own role (chat_staff.may_close): one button each, on that task.
    assert done_buttons(home_view(sctx, pat)) == [str(review)]
    assert done_buttons(home_view(sctx, lee)) == [str(check)]
    # Customer service sees neither kind of task, and a button on neither.
    with sctx.engine.connect() as conn:
        alice = staff_user(conn, sctx.settings, "slack_user", "U0ALICE")
    assert alice is not None and done_buttons(home_view(sctx, alice)) == []


def test_unlinked_read_shows_an_unlinked_account_the_data_without_buttons(sctx: Context) -> None:
    (review,) = open_tasks(sctx, "KTL-200")
    door = Door(sctx, lambda: None)
    stranger = door.who("U0STRANGER")
    assert stranger.linked is False and stranger.roles == frozenset()
    assert "not linked" in json.dumps(home_view(sctx, stranger))
    reading = Context(engine=sctx.engine, settings=sctx.settings.model_copy(update={"staff": sctx.settings.staff
                      .model_copy(update={"unlinked_read": True})}), clock=sctx.clock)
    view = home_view(reading, stranger)
    assert f"#{review} Expedite KTL-200" in json.dumps(view, ensure_ascii=False)
    assert done_buttons(view) == []


def done_buttons(view: dict[str, Any]) -> list[str]:
    return [b["accessory"]["value"] for b in view["blocks"]
            if b.get("accessory", {}).get("action_id") == "bo:complete_task"]


# -- the sender -------------------------------------------------------------------------------------
def test_a_team_alert_is_block_kit_and_its_follow_up_a_thread_reply(sctx: Context, slack: FakeSlack) -> None:
    (task_id,) = open_tasks(sctx, "KTL-200")
    assert asyncio.run(drain_outbox(sctx)) == 1
    first = slack.wait_for("chat.postMessage")[0]
    assert first.args["channel"] == TEAM_CHANNEL and "thread_ts" not in first.args
    blocks = first.args["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "actions", "context"]
    assert blocks[0]["text"]["type"] == "plain_text" and len(blocks[0]["text"]["text"]) <= 150
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in blocks[2]["fields"]}
    assert fields["*Task*"] == f"#{task_id}" and fields["*SKU*"] == "KTL-200"
    buttons = {(b["action_id"], b["value"]) for b in blocks[3]["elements"]}
    assert buttons == {("bo:task_take", str(task_id)), ("bo:task_finish", str(task_id)),
                       ("bo:task_reassign", str(task_id))}  # docs/tasks.md
    with sctx.engine.connect() as conn:
        row = conn.execute(select(t.outbox.c.body, t.outbox.c.provider_id, t.outbox.c.status)
                           .where(t.outbox.c.channel == "slack")).one()
    assert first.args["text"] == row.body and "KTL-200" in row.body  # the text fallback
    assert row.provider_id.startswith(f"{TEAM_CHANNEL}:") and row.status == "sent"
    first_ts = row.provider_id.split(":", 1)[1]
    # A second alert on the same SKU (an inventory check) threads under the first.
    with unit_of_work(sctx.engine) as conn:
        assert open_task(conn, sctx, "inventory_check", sku="KTL-200", title="Count KTL-200", detail={},
                         cause="test:count") is not None
    assert asyncio.run(drain_outbox(sctx)) == 1
    follow_up = slack.wait_for("chat.postMessage", 2)[1]
    assert follow_up.args["thread_ts"] == first_ts
    assert follow_up.args["channel"] == TEAM_CHANNEL


def test_a_high_value_backorder_alert_is_block_kit_for_the_warehouse_manager(ctx: Context,
                                                                             slack: FakeSlack) -> None:
    settings = load_settings(
        database_url=ctx.settings.database_url,
        slack={"bot_token": TOKEN, "signing_secret": SECRET, "api_base_url": slack.api_url},
        staff={"warehouse_manager": {"channels": ["slack"], "slack_channel": "C0WAREHOUSE"}},
        notify={"high_value_threshold": 50, "rules": {"ops_digest": {"enabled": False}}},
    )
    hctx = Context(engine=ctx.engine, settings=settings, clock=ctx.clock)
    _, ids = store_events(hctx, SEED)  # order 1042: 2 x 40.00 waiting, over the 50.00 threshold
    drain(hctx, ids)
    asyncio.run(drain_outbox(hctx))
    [alert] = [c for c in slack.wait_for("chat.postMessage") if c.args["channel"] == "C0WAREHOUSE"]
    blocks = alert.args["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "actions", "context"]
    assert blocks[0]["text"]["text"].startswith("High-value backorder: order 1042")
    fields = dict(f["text"].split("\n", 1) for f in blocks[2]["fields"])
    assert fields["*Order*"] == "1042" and fields["*Customer*"].startswith("Ada")
    assert "80" in fields["*Waiting value*"]
    assert [(b["action_id"], b["value"]) for b in blocks[3]["elements"]] == [("bo:show_waiting", "KTL-200")]
    with hctx.engine.connect() as conn:
        row = conn.execute(select(t.outbox.c.body, t.outbox.c.role, t.outbox.c.status)
                           .where(t.outbox.c.kind == "high_value_backorder")).one()
    assert (row.role, row.status) == ("warehouse_manager", "sent")
    assert alert.args["text"] == row.body and "1042" in row.body  # the text fallback


def test_a_burst_to_one_channel_keeps_the_rate(sctx: Context, slack: FakeSlack) -> None:
    open_tasks(sctx, "A-1", "A-2", "A-3", "A-4")
    assert asyncio.run(drain_outbox(sctx)) == 4
    arrivals = [c.monotonic for c in slack.wait_for("chat.postMessage", 4)]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # 5 messages/s to one channel ([notify] rate_per_destination): at least ~0.2 s apart (a lower bound only).
    assert min(gaps) >= 0.15 and arrivals[-1] - arrivals[0] >= 0.55


def message(recipient: str, payload: dict[str, Any] | None = None, body: str = "Stock for KTL-200 is late") -> Outgoing:
    return Outgoing(id=1, channel="slack", recipient=recipient, kind="procurement_task", body=body,
                    idempotency_key="k1", payload=payload or {})


async def send(sctx: Context, msg: Outgoing, clock: Callable[[], datetime] | None = None) -> Sent | SendError:
    sender = SlackSender(sctx.settings.slack, sctx.engine, **({"clock": clock} if clock else {}))
    try:
        return await sender.send(msg)
    except SendError as exc:
        return exc
    finally:
        await sender.aclose()


def test_a_user_is_reached_in_their_dm_with_text_only(sctx: Context, slack: FakeSlack) -> None:
    sent = asyncio.run(send(sctx, message("U0ALICE", body="Order 1042 <ships> & more")))
    assert isinstance(sent, Sent) and sent.provider_id is not None and sent.provider_id.startswith("D0ALICE:")
    opened, posted = slack.calls()
    assert opened.method == "conversations.open" and opened.args["users"] == "U0ALICE"
    assert posted.args["channel"] == "D0ALICE" and "blocks" not in posted.args
    assert posted.args["text"] == "Order 1042 &lt;ships&gt; &amp; more"


def test_429_is_retryable_with_retry_after(sctx: Context, slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", "ratelimited", retry_after=7)
    err = asyncio.run(send(sctx, message(TEAM_CHANNEL)))
    assert isinstance(err, RetryableError) and err.reason == "rate_limited" and err.retry_after == 7.0


@pytest.mark.parametrize(("header", "seconds"), [("-5", None), ("nan", None), ("soon", None), ("2.5", 2.5)])
def test_a_malformed_or_negative_retry_after_never_asks_for_a_negative_wait(sctx: Context, slack: FakeSlack,
                                                                           header: str, seconds: float | None) -> None:
    slack.fail_next("chat.postMessage", "ratelimited", retry_after=header)
    err = asyncio.run(send(sctx, message(TEAM_CHANNEL)))
    assert isinstance(err, RetryableError) and err.reason == "rate_limited" and err.retry_after == seconds


def test_a_thread_is_remembered_at_the_senders_clock(sctx: Context, slack: FakeSlack) -> None:
    at = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    card = {"kind": "procurement_task", "title": "Procurement: KTL-200", "text": "Expedite it.", "fields": [],
            "actions": [], "topic": "sku:KTL-200"}
    sent = asyncio.run(send(sctx, message(TEAM_CHANNEL, payload=card), clock=lambda: at))
    assert isinstance(sent, Sent)
    with sctx.engine.connect() as conn:
        row = conn.execute(select(t.chat_threads.c.thread_id, t.chat_threads.c.updated_at)).one()
    assert f"{TEAM_CHANNEL}:{row.thread_id}" == sent.provider_id
    assert row.updated_at.replace(tzinfo=row.updated_at.tzinfo or UTC) == at


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived", "invalid_auth",
                                   "account_inactive", "user_not_found"])
def test_address_and_auth_errors_are_permanent(sctx: Context, slack: FakeSlack, error: str) -> None:
    slack.fail_next("chat.postMessage", error)
    err = asyncio.run(send(sctx, message(TEAM_CHANNEL)))
    assert isinstance(err, PermanentError) and err.reason == error


def test_server_errors_and_refused_connections_are_retryable(sctx: Context, slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", "http_503")
    err = asyncio.run(send(sctx, message(TEAM_CHANNEL)))
    assert isinstance(err, RetryableError) and err.reason == "server_error"
    down = sctx.settings.model_copy(update={"slack": sctx.settings.slack.model_copy(
        update={"api_base_url": "http://127.0.0.1:9/api/"})})
    err = asyncio.run(send(Context(engine=sctx.engine, settings=down, clock=sctx.clock), message(TEAM_CHANNEL)))
    assert isinstance(err, RetryableError) and err.reason == "connection"


def test_a_recipient_that_is_no_slack_id_is_refused(sctx: Context, slack: FakeSlack) -> None:
    err = asyncio.run(send(sctx, message("#general")))
    assert isinstance(err, PermanentError) and err.reason == "bad_recipient" and "#general" in str(err)
    assert slack.calls() == []


# -- the manifest -----------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]
# Slack's documented scope for each Web API method the code calls (none: no scope needed).
METHOD_SCOPES: dict[str, set[str]] = {"chat.postMessage": {"chat:write"}, "chat.update": {"chat:write"},
                                      "chat.postEphemeral": {"chat:write"}, "conversations.open": {"im:write"},
                                      "views.publish": set(), "views.open": set(), "auth.test": set()}
EVENT_SCOPES: dict[str, set[str]] = {"app_mention": {"app_mentions:read"}, "message.im": {"im:history"},
                                     "app_home_opened": set()}
CALLS = re.compile(r"client\.([a-z]+_[A-Za-z]+)\(|_call\(\"([a-z]+_[A-Za-z]+)\"|\b(say)\(")


def methods_called() -> set[str]:
    """Every Web API method in the Slack code: client.<method>(...), the sender's _call("<method>"), say()."""
    sources = [*sorted((ROOT / "bot" / "slack").rglob("*.py")), ROOT / "notifiers" / "senders" / "slack.py"]
    found: set[str] = {"auth.test"}  # Bolt's single-workspace authorization, on the first request
    for path in sources:
        for m in CALLS.finditer(path.read_text()):
            name = m.group(1) or m.group(2) or "chat_postMessage"  # say() is chat.postMessage
            found.add(name.replace("_", ".", 1))
    return found


def test_the_manifest_matches_what_the_code_registers_and_calls() -> None:
    manifest = json.loads((ROOT / "slack" / "manifest.json").read_text())
    features, settings = manifest["features"], manifest["settings"]
    assert features["app_home"]["home_tab_enabled"] and features["app_home"]["messages_tab_enabled"]
    assert features["bot_user"]["display_name"]
    assert sorted(settings["event_subscriptions"]["bot_events"]) == sorted(EVENTS.values())
    assert {c["command"] for c in features["slash_commands"]} == set(COMMANDS)
    urls = [settings["event_subscriptions"]["request_url"], settings["interactivity"]["request_url"],
            *(c["url"] for c in features["slash_commands"])]
    assert all(u.startswith("https://") and u.endswith(EVENTS_PATH) for u in urls)
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is False and settings["org_deploy_enabled"] is False
    # Every button a card can carry is handled by the actions listener.
    assert all(ACTION_IDS.match(f"bo:{action}") for action in (*ACTIONS, "draft_approve", "draft_edit", "draft_reject"))
    assert not ACTION_IDS.match("bo:drop_tables") and not ACTION_IDS.match("bo:draft_drop")
    called = methods_called()
    assert called == {"auth.test", "chat.postMessage", "chat.update", "chat.postEphemeral", "conversations.open",
                      "views.publish", "views.open"}
    unknown = called - METHOD_SCOPES.keys()
    assert not unknown, f"add the scope of {unknown} to METHOD_SCOPES and the manifest"
    needed = set().union(*(METHOD_SCOPES[m] for m in called), *(EVENT_SCOPES[e] for e in EVENTS.values()),
                         {"commands"} if COMMANDS else set())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(needed)  # exactly: no scope to spare
    # It promises no button the cards do not carry: none runs allocation (that is a typed question).
    described = " ".join(manifest["display_information"].values()).lower()
    assert any("alloc" in a for a in ACTIONS) or "alloc" not in described


# -- Socket Mode ------------------------------------------------------------------------------------
def test_socket_mode_answers_over_the_websocket_without_an_http_route(ctx: Context) -> None:
    with FakeSlack(TOKEN, app_token="xapp-1-A0BACKORD-1-abc") as fake:
        # No one is linked here: [staff] unlinked_read lets the workspace's accounts read.
        settings = load_settings(database_url=ctx.settings.database_url, staff={"unlinked_read": True},
                                 slack={"bot_token": TOKEN, "app_token": "xapp-1-A0BACKORD-1-abc",
                                        "api_base_url": fake.api_url})
        sctx = Context(engine=ctx.engine, settings=settings, clock=ctx.clock)
        with TestClient(create_app(sctx, background_applier=False)) as c:
            # No signing secret: no HTTP request could be verified, so the route is not there at all.
            assert c.post("/slack/events", content=b"{}").status_code == 404
            body, _ = signer.event(dm("open tasks"), event_id="EvSocket")
            fake.push({"envelope_id": "env-1", "type": "events_api", "accepts_response_payload": False,
                       "retry_attempt": 0, "retry_reason": "", "payload": json.loads(body)})
            answer = fake.wait_for("chat.postMessage")[0]
            acks = fake.wait_for("socket_ack")
        assert answer.args == {**answer.args, "channel": "D0ALICE", "text": "No open tasks."}
        assert acks[0].args["envelope_id"] == "env-1"
        assert fake.calls("apps.connections.open")[0].headers["Authorization"] == "Bearer xapp-1-A0BACKORD-1-abc"
