"""Take / Done / Reassign through every front door, on SQLite and PostgreSQL: POST /tasks/{id}/take, /finish,
/reassign (bot/tasks_api.py); the Slack buttons through the fake Slack Web API (tests/slack_bot.py); the Teams
buttons as Action.Execute invokes and the Action.Submit fallback (tests/teams_bot.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from conftest import Clock
from fastapi.testclient import TestClient
from sqlalchemy import select

from backorder.config import load_settings
from bot.api import create_app
from bot.slack.actions import ACTION_IDS
from bot.slack.home import home_view
from notifiers.adaptive_cards import escape_markdown
from services import tasks
from services.channels import add_staff, staff_user
from services.context import Context
from services.worker import drain_outbox
from store import tables as t
from store.db import unit_of_work
from tests.fakes.bot_connector import BotConnector
from tests.fakes.slack_api import FakeSlack
from tests.slack_bot import TEAM_CHANNEL, post, signer, slack_context
from tests.teams_bot import post as teams_post
from tests.teams_bot import teams_ctx

CARD_TS = "1767225800.000100"


def opened(ctx: Context, kind: str = "procurement_review", sku: str | None = "KTL-200",
           title: str = "Expedite KTL-200") -> int:
    with unit_of_work(ctx.engine) as conn:
        task_id = tasks.open_task(conn, ctx, kind, sku=sku, title=title, detail={}, cause=f"test:{kind}:{sku}")
    assert task_id is not None
    return task_id


def task_row(ctx: Context, task_id: int) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        return dict(conn.execute(select(t.tasks).where(t.tasks.c.id == task_id)).mappings().one())


def staff(ctx: Context) -> None:
    with unit_of_work(ctx.engine) as conn:
        add_staff(conn, "bob", ["procurement"], ctx.now(), slack_user="U0BOB", teams_user="aad-bob")
        add_staff(conn, "pat", ["procurement"], ctx.now(), name="Pat Lee", slack_user="U0PAT")
        add_staff(conn, "ann", ["customer_service"], ctx.now(), slack_user="U0ANN", teams_user="aad-ann")
        add_staff(conn, "carol", ["ops"], ctx.now())


# -- HTTP ------------------------------------------------------------------------------------------------
@pytest.fixture
def api(ctx: Context) -> Iterator[tuple[TestClient, Context]]:
    made = Context(engine=ctx.engine, settings=load_settings(database_url=ctx.settings.database_url,
                                                            api_token="s3cret"), clock=ctx.clock)
    staff(made)
    with TestClient(create_app(made, background_applier=False),
                    headers={"Authorization": "Bearer s3cret"}) as client:
        yield client, made


def test_http_take_finish_and_reassign(api: tuple[TestClient, Context], clock: Clock) -> None:
    client, ctx = api
    task_id = opened(ctx)
    listed = client.get("/tasks").json()["tasks"]
    assert [(tk["id"], tk["owner_role"], tk["owner"], tk["overdue"]) for tk in listed] == [
        (task_id, "procurement", None, False)]
    assert listed[0]["due_at"] == (ctx.now() + timedelta(hours=24)).isoformat()
    r = client.post(f"/tasks/{task_id}/take", json={"staff_id": "bob"})
    assert r.status_code == 200 and (r.json()["owner"], r.json()["changed"]) == ("bob", True)
    assert client.post(f"/tasks/{task_id}/take", json={"staff_id": "bob"}).json()["changed"] is False
    r = client.post(f"/tasks/{task_id}/reassign", json={"by": "bob", "to": "pat"})
    assert r.status_code == 200 and r.json()["owner"] == "pat"
    clock.now += timedelta(days=2)
    assert client.get("/tasks").json()["tasks"][0]["overdue"] is True
    r = client.post(f"/tasks/{task_id}/finish", json={"staff_id": "pat"})
    assert r.status_code == 200 and (r.json()["status"], r.json()["closed_by"]) == ("done", "pat")
    again = client.post(f"/tasks/{task_id}/finish", json={"staff_id": "carol"})
    assert again.status_code == 409 and again.json()["detail"].startswith(f"Task #{task_id} is already done by pat")
    assert again.json()["task"]["closed_by"] == "pat"
    assert client.get("/tasks").json()["tasks"] == []
    assert [tk["outcome"] for tk in client.get("/tasks", params={"status": "done"}).json()["tasks"]] == ["done"]


def test_http_errors_are_404_409_403_and_422(api: tuple[TestClient, Context]) -> None:
    client, ctx = api
    task_id = opened(ctx)
    assert client.post("/tasks/999/take", json={"staff_id": "bob"}).status_code == 404
    refused = client.post(f"/tasks/{task_id}/take", json={"staff_id": "ann"})
    assert refused.status_code == 403 and refused.json()["detail"] == (
        "Only admin or ops or procurement may take procurement review tasks.")
    unknown = client.post(f"/tasks/{task_id}/take", json={"staff_id": "ghost"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "staff_id"]
    assert client.post(f"/tasks/{task_id}/take", json={}).status_code == 422  # who acts must be named
    assert client.post(f"/tasks/{task_id}/take", json={"staff_id": "bob"}).status_code == 200
    taken = client.post(f"/tasks/{task_id}/take", json={"staff_id": "pat"})
    assert taken.status_code == 409 and "already taken by bob" in taken.json()["detail"]
    wrong_to = client.post(f"/tasks/{task_id}/reassign", json={"by": "bob", "to": "ann"})
    assert wrong_to.status_code == 422 and wrong_to.json()["detail"][0]["loc"] == ["body", "to"]
    assert "ann cannot work procurement review tasks" in wrong_to.json()["detail"][0]["msg"]
    assert client.post(f"/tasks/{task_id}/reassign", json={"by": "ghost", "to": "pat"}).json()["detail"][0][
        "loc"] == ["body", "by"]
    assert client.post(f"/tasks/{task_id}/reassign", json={"by": "ann", "to": "pat"}).status_code == 403
    bare = TestClient(client.app)
    assert bare.post(f"/tasks/{task_id}/finish", json={"staff_id": "bob"}).status_code == 401  # the API token
    cross = client.post(f"/tasks/{task_id}/finish", json={"staff_id": "bob"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403 and task_row(ctx, task_id)["status"] == "open"


# -- Slack -----------------------------------------------------------------------------------------------
@pytest.fixture
def sctx(ctx: Context, slack: FakeSlack) -> Context:
    made = slack_context(ctx, slack, rate=50.0)
    staff(made)
    return made


@pytest.fixture
def sclient(sctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(sctx, background_applier=False)) as c:
        yield c


def press(client: TestClient, slack: FakeSlack, user: str, action: str, value: str) -> None:
    sent = signer.block_actions(user_id=user, action_id=f"bo:{action}", value=value, channel_id=TEAM_CHANNEL,
                                message_ts=CARD_TS, response_url=slack.response_url("r"))
    assert post(client, sent).status_code == 200


def test_the_task_alert_carries_take_done_reassign_and_slack_routes_them(sctx: Context, slack: FakeSlack) -> None:
    task_id = opened(sctx)
    assert asyncio.run(drain_outbox(sctx)) == 1
    alert = slack.wait_for("chat.postMessage")[0]
    actions = next(b for b in alert.args["blocks"] if b["type"] == "actions")["elements"]
    assert [(b["action_id"], b["value"]) for b in actions] == [
        ("bo:task_take", str(task_id)), ("bo:task_finish", str(task_id)), ("bo:task_reassign", str(task_id))]
    assert all(ACTION_IDS.match(b["action_id"]) for b in actions) and ACTION_IDS.match("bo:task_reassign_to")
    fields = [f["text"] for f in next(b for b in alert.args["blocks"] if "fields" in b)["fields"]]
    assert "*Owner*\nprocurement" in fields and any(f.startswith("*Due*\nMar 3, 2026") for f in fields)


def test_slack_take_then_done_twice_gives_one_outcome(sctx: Context, sclient: TestClient, slack: FakeSlack) -> None:
    task_id = opened(sctx)
    press(sclient, slack, "U0BOB", "task_take", str(task_id))
    took = slack.wait_for("chat.postMessage")[0]
    assert (took.args["channel"], took.args["thread_ts"]) == (TEAM_CHANNEL, CARD_TS)  # in the alert's thread
    assert took.args["text"] == f"bob took task #{task_id} (Expedite KTL-200)."
    assert task_row(sctx, task_id)["owner"] == "bob"
    press(sclient, slack, "U0BOB", "task_finish", str(task_id))
    done = slack.wait_for("chat.postMessage", 2)[1]
    assert done.args["text"] == f"bob finished task #{task_id} (Expedite KTL-200)."
    press(sclient, slack, "U0BOB", "task_finish", str(task_id))  # pressed again: told privately, nothing changes
    [late] = slack.wait_for("chat.postEphemeral")
    assert (late.args["user"], late.args["channel"]) == ("U0BOB", TEAM_CHANNEL)
    assert late.args["text"].startswith(f"Task #{task_id} is already done by bob")
    assert len(slack.calls("chat.postMessage")) == 2
    row = task_row(sctx, task_id)
    assert (row["status"], row["closed_by"], row["outcome"]) == ("done", "bob", "done")


def test_slack_refuses_other_roles_and_unlinked_accounts(sctx: Context, sclient: TestClient,
                                                         slack: FakeSlack) -> None:
    task_id = opened(sctx)
    press(sclient, slack, "U0ANN", "task_take", str(task_id))
    [refused] = slack.wait_for("chat.postEphemeral")
    assert refused.args["text"] == "Only admin or ops or procurement may take procurement review tasks."
    press(sclient, slack, "U0STRANGER", "task_finish", str(task_id))
    unlinked = slack.wait_for("chat.postEphemeral", 2)[1]
    assert "is not linked" in unlinked.args["text"] and "--slack-user U0STRANGER" in unlinked.args["text"]
    assert task_row(sctx, task_id)["status"] == "open" and task_row(sctx, task_id)["owner"] is None
    assert slack.calls("chat.postMessage") == []


def test_slack_reassign_shows_a_menu_and_the_choice_reassigns(sctx: Context, sclient: TestClient,
                                                              slack: FakeSlack) -> None:
    task_id = opened(sctx)
    tasks.take(sctx, task_id, "bob")
    press(sclient, slack, "U0BOB", "task_reassign", str(task_id))
    [menu] = slack.wait_for("chat.postEphemeral")
    assert menu.args["user"] == "U0BOB"
    blocks = menu.args["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    select_ = blocks[0]["accessory"]
    assert select_["type"] == "static_select" and select_["action_id"] == "bo:task_reassign_to"
    # Who can work a procurement review, but its owner: pat (procurement) and carol (ops); not ann.
    assert [o["value"] for o in select_["options"]] == ["carol", "pat"]
    assert select_["options"][1]["text"]["text"] == "Pat Lee (pat)"
    chosen = signer.interaction({
        "type": "block_actions", "user": {"id": "U0BOB", "username": "u0bob", "team_id": "T0BACKORD"},
        "api_app_id": "A0BACKORD", "token": "legacy", "trigger_id": "1.2.3",
        "container": {"type": "message", "message_ts": "1767225900.000100", "channel_id": TEAM_CHANNEL,
                      "is_ephemeral": True},
        "team": {"id": "T0BACKORD", "domain": "backorders"}, "channel": {"id": TEAM_CHANNEL, "name": "backorders"},
        "response_url": slack.response_url("menu"),
        "actions": [{"action_id": "bo:task_reassign_to", "block_id": blocks[0]["block_id"], "type": "static_select",
                     "selected_option": {"text": {"type": "plain_text", "text": "Pat Lee (pat)"}, "value": "pat"},
                     "action_ts": "1767225901.000100"}]})
    assert post(sclient, chosen).status_code == 200
    [said] = slack.wait_for("chat.postMessage")
    assert (said.args["channel"], said.args["thread_ts"]) == (TEAM_CHANNEL, CARD_TS)  # the alert's thread
    assert said.args["text"] == f"bob reassigned task #{task_id} (Expedite KTL-200) to pat."
    assert task_row(sctx, task_id)["owner"] == "pat"


def test_app_home_has_take_and_reassign_and_a_press_redraws_it(sctx: Context, sclient: TestClient,
                                                               slack: FakeSlack) -> None:
    task_id = opened(sctx)
    with sctx.engine.connect() as conn:
        bob = staff_user(conn, sctx.settings, "slack_user", "U0BOB")
    assert bob is not None
    view = home_view(sctx, bob)
    buttons = [(e["action_id"], e["value"]) for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == [("bo:task_take", str(task_id)), ("bo:task_reassign", str(task_id))]
    assert "not taken (procurement), due 2026-03-03 09:00 UTC" in json.dumps(view["blocks"])
    home_press = signer.interaction({
        "type": "block_actions", "user": {"id": "U0BOB", "username": "u0bob", "team_id": "T0BACKORD"},
        "api_app_id": "A0BACKORD", "token": "legacy", "trigger_id": "1.2.3",
        "container": {"type": "view", "view_id": "V0HOME"}, "team": {"id": "T0BACKORD", "domain": "backorders"},
        "view": {"id": "V0HOME", "type": "home"},
        "actions": [{"action_id": "bo:task_take", "block_id": "b", "type": "button", "value": str(task_id),
                     "action_ts": "1767225901.000100"}]})
    assert post(sclient, home_press).status_code == 200
    [said] = slack.wait_for("chat.postMessage")
    assert said.args["channel"] == "U0BOB" and "thread_ts" not in said.args  # the presser's DM with the app
    [published] = slack.wait_for("views.publish")
    redrawn = json.dumps(published.args["view"])
    assert "bob&#x27;s (procurement)" in redrawn or "bob's (procurement)" in redrawn
    assert "bo:task_take" not in redrawn  # taken: no Take any more


# -- Teams -----------------------------------------------------------------------------------------------
@pytest.fixture
def tdev(ctx: Context) -> Context:
    made = teams_ctx(ctx)
    staff(made)
    return made


@pytest.fixture
def tclient(tdev: Context) -> TestClient:
    return TestClient(create_app(tdev, background_applier=False))


def execute(client: TestClient, bc: BotConnector, verb: str, task_id: int, aad: str = "aad-bob",
            **more: str) -> dict[str, Any]:
    r = teams_post(client, bc.action_execute(verb, {"action": verb, "value": str(task_id), **more}, aad=aad))
    assert r.status_code == 200
    return dict(r.json())


def texts(card: dict[str, Any]) -> list[str]:
    return [b.get("text", "") for b in card["body"] if b["type"] == "TextBlock"]


def shows(card: dict[str, Any], text: str) -> bool:
    """Whether a card's text blocks say `text` (Markdown-escaped, as Teams reads it), or start with it."""
    return any(x.startswith(escape_markdown(text)) for x in texts(card))


def test_teams_take_done_twice_and_refusals(tdev: Context, tclient: TestClient, bc: BotConnector) -> None:
    task_id = opened(tdev)
    refused = execute(tclient, bc, "task_take", task_id, aad="aad-ann")
    assert refused["statusCode"] == 200
    assert shows(refused["value"], "Only admin or ops or procurement may take procurement review tasks.")
    took = execute(tclient, bc, "task_take", task_id)
    assert shows(took["value"], f"bob took task #{task_id} (Expedite KTL-200).")
    assert [a["verb"] for a in took["value"]["actions"]] == ["task_finish", "task_reassign"]  # no Take: it's bob's
    done = execute(tclient, bc, "task_finish", task_id)
    assert shows(done["value"], f"bob finished task #{task_id} (Expedite KTL-200).")
    assert "actions" not in done["value"]
    again = execute(tclient, bc, "task_finish", task_id)
    assert shows(again["value"], f"Task #{task_id} is already done by bob")
    row = task_row(tdev, task_id)
    assert (row["status"], row["closed_by"]) == ("done", "bob")
    unknown = teams_post(tclient, bc.action_execute("task_take", {"action": "task_take", "value": "999"},
                                                    aad="aad-bob"))
    assert unknown.json()["statusCode"] == 400 and "not found" in unknown.json()["value"]["message"]
    assert bc.posts == []  # invokes are answered in the HTTP response


def test_teams_reassign_picker_then_choice(tdev: Context, tclient: TestClient, bc: BotConnector) -> None:
    task_id = opened(tdev)
    picker = execute(tclient, bc, "task_reassign", task_id)["value"]
    [choice] = [b for b in picker["body"] if b["type"] == "Input.ChoiceSet"]
    assert choice["id"] == "to" and [c["value"] for c in choice["choices"]] == ["bob", "carol", "pat"]
    assert [a["verb"] for a in picker["actions"]] == ["task_reassign"]
    # Teams merges the card's inputs into the pressed action's data.
    moved = execute(tclient, bc, "task_reassign", task_id, to="pat")["value"]
    assert shows(moved, f"bob reassigned task #{task_id} (Expedite KTL-200) to pat.")
    assert task_row(tdev, task_id)["owner"] == "pat"
    wrong = execute(tclient, bc, "task_reassign", task_id, to="ann")["value"]
    assert shows(wrong, "ann cannot work procurement review tasks")
    assert task_row(tdev, task_id)["owner"] == "pat"


def test_teams_action_submit_fallback_is_answered_in_a_reply(tdev: Context, tclient: TestClient,
                                                             bc: BotConnector) -> None:
    task_id = opened(tdev)
    msg = bc.message("", aad="aad-bob", value={"action": "task_take", "value": str(task_id)})
    assert teams_post(tclient, msg).status_code == 202
    [reply] = bc.wait_for(1)
    assert reply.activity["text"] == escape_markdown(f"bob took task #{task_id} (Expedite KTL-200).")
    assert task_row(tdev, task_id)["owner"] == "bob"
