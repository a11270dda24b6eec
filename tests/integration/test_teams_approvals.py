"""A draft's approval round trip in Microsoft Teams, on both stores: the approval card the worker posts, presses
of its buttons as Teams sends them into POST /api/messages (Action.Execute invokes and the Action.Submit
fallback), and the card edited in place (PUT) through a fake Bot Connector (tests/fakes/bot_connector.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.api import create_app
from notifiers.adaptive_cards import CONTENT_TYPE
from notifiers.senders.base import Outgoing, PermanentError
from notifiers.senders.teams import TeamsSender, split_provider_id
from services import approvals
from services.context import Context
from services.inbox import drain, store_events
from services.worker import drain_outbox
from store import tables as t
from tests.draft_rows import audit_rows, customer_rows, draft_row
from tests.fakes.bot_connector import BotConnector, Posted
from tests.teams_bot import post, teams_ctx

OPS = "19:approvals@thread.tacv2"
ADA, BEA, CID = "aad-ada", "aad-bea", "aad-cid"  # two approvers, and someone of ops


def ev(event_id: str, type_: str, data: dict[str, Any], at: str = "2026-03-02T08:59:00Z") -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": "test", "data": data}


# A gold customer's order that cannot be filled: its backorder notice is a draft waiting for approval.
CATALOG = [
    ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
    ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40, "lead_time_days": 14}),
    ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada Lovelace", "region": "north", "tier": "gold",
                                   "email": "ada@example.com"}),
    ev("o1", "order.placed", {"order_id": "1042", "customer_id": "C1", "lines": [
        {"line_id": "1", "sku": "KTL-200", "qty": 2, "unit_price": 40}]}),
]


@pytest.fixture
def tctx(ctx: Context) -> Context:
    return teams_ctx(ctx, staff={"approver": {"channels": ["teams"], "teams_conversation": OPS},
                                 "members": {"S-ada": {"roles": ["approver"], "teams_user": ADA},
                                             "S-bea": {"roles": ["approver"], "teams_user": BEA},
                                             "S-cid": {"roles": ["ops"], "teams_user": CID}}})


@pytest.fixture
def client(tctx: Context) -> TestClient:
    return TestClient(create_app(tctx, background_applier=False))


def worker(ctx: Context) -> None:
    asyncio.run(drain_outbox(ctx))


class Posted1:
    """The approval card as the worker posted it, and what its press needs."""

    def __init__(self, draft_id: int, post: Posted, provider_id: str) -> None:
        self.draft_id = draft_id
        self.post = post
        self.provider_id = provider_id
        self.activity_id = split_provider_id(provider_id)[1]

    @property
    def card(self) -> dict[str, Any]:
        content: dict[str, Any] = self.post.activity["attachments"][0]["content"]
        return content


@pytest.fixture
def sent(tctx: Context, client: TestClient, bc: BotConnector) -> Posted1:
    """The bot is in the approvers' channel; a draft waits; the worker posts its approval card there."""
    assert post(client, bc.members_added(conversation=OPS)).status_code == 202
    _, ids = store_events(tctx, CATALOG)
    drain(tctx, ids)
    with tctx.engine.connect() as conn:
        [draft] = conn.execute(select(t.drafts)).mappings().all()
    assert (draft["status"], draft["kind"], draft["customer_id"]) == ("pending", "delay_notice", "C1")
    worker(tctx)
    [card] = [p for p in bc.posts if p.conversation_id == OPS and p.activity.get("attachments")]
    with tctx.engine.connect() as conn:
        [row] = conn.execute(select(t.outbox).where(t.outbox.c.kind == "approval_request")).all()
    assert (row.channel, row.recipient, row.status) == ("teams", OPS, "sent")
    return Posted1(draft["id"], card, row.provider_id)


def press(bc: BotConnector, verb: str, card: Posted1, *, aad: str = ADA, text: str | None = None,
          value: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"action": verb, "value": value if value is not None else str(card.draft_id)}
    if text is not None:
        data["text"] = text
    return bc.action_execute(verb, data, conversation=OPS, conversation_type="channel", user=f"29:{aad}", aad=aad,
                             name=aad, reply_to=card.activity_id)


def texts(card: dict[str, Any]) -> str:
    """Every TextBlock of a card, joined, Markdown escapes taken out (what a reader sees)."""
    blocks = [b["text"] for b in card.get("body", []) if b.get("type") == "TextBlock"]
    return "\n".join(blocks).replace("\\", "")


def answered_card(response: Any) -> dict[str, Any]:
    assert response.status_code == 200
    body = response.json()
    assert (body["statusCode"], body["type"]) == (200, CONTENT_TYPE)
    card: dict[str, Any] = body["value"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.5")
    return card


# -- the card ----------------------------------------------------------------------------------------------

def test_the_approval_card_has_approve_edit_and_reject(tctx: Context, sent: Posted1) -> None:
    draft = draft_row(tctx, sent.draft_id)
    card = sent.card
    assert sent.post.path == f"/v3/conversations/{OPS}/activities"
    # The provider id names the conversation and the activity: all an edit of the card needs.
    assert sent.provider_id == f"{OPS}|{sent.activity_id}" and sent.activity_id.startswith("activity-")
    assert draft["text"].split("\n")[0] in texts(card)
    value = str(sent.draft_id)
    approve, edit, reject = card["actions"]
    for action, verb in ((approve, "draft_approve"), (reject, "draft_reject")):
        assert (action["type"], action["verb"]) == ("Action.Execute", verb)
        assert action["data"] == {"action": verb, "value": value}
        assert action["fallback"] == {"type": "Action.Submit", "title": action["title"], "data": action["data"],
                                      "associatedInputs": "none"}
        assert action["associatedInputs"] == "none"  # a plain Approve never sends an edited text
    assert (edit["type"], edit["title"]) == ("Action.ShowCard", "Edit")
    [box] = edit["card"]["body"]
    assert box == {"type": "Input.Text", "id": "text", "isMultiline": True, "value": draft["text"],
                   "maxLength": tctx.settings.drafts.max_chars}
    [send_edited] = edit["card"]["actions"]
    assert (send_edited["type"], send_edited["verb"], send_edited["data"]) == (
        "Action.Execute", "draft_approve", {"action": "draft_approve", "value": value})
    assert send_edited["fallback"]["type"] == "Action.Submit" and "associatedInputs" not in send_edited


# -- Action.Execute ----------------------------------------------------------------------------------------

def test_approve_answers_with_the_outcome_and_the_worker_edits_the_card_for_everyone(
        tctx: Context, client: TestClient, bc: BotConnector, sent: Posted1) -> None:
    posts_before = len(bc.posts)
    card = answered_card(post(client, press(bc, "draft_approve", sent)))
    assert "actions" not in card
    assert card["body"][-1] == {"type": "TextBlock", "text": "Approved by S-ada at Mar 2, 2026, 9:00\u202fAM.",
                                "weight": "Bolder", "wrap": True}  # who and when, on its own; not edited
    draft = draft_row(tctx, sent.draft_id)
    assert (draft["status"], draft["decided_by"], draft["decided_via"], draft["edited"]) == (
        "approved", "S-ada", "teams", False)
    [notice] = customer_rows(tctx, sent.draft_id)
    assert notice["channel"] == draft["channel"] and notice["body"].strip() == draft["text"].strip()
    [entry] = audit_rows(tctx, sent.draft_id)
    assert (entry["action"], entry["actor"], entry["after"]["approver"], entry["after"]["via"]) == (
        "draft_approved", "S-ada", "S-ada", "teams")
    o = t.outbox
    with tctx.engine.connect() as conn:
        [update] = conn.execute(select(o).where(o.c.kind == "approval_update")).all()
    assert (update.channel, update.recipient, update.payload["replace"]) == ("teams", OPS, sent.provider_id)
    assert len(bc.posts) == posts_before  # the invoke is answered in its HTTP response

    worker(tctx)
    [edit] = bc.updates
    assert edit.path == f"/v3/conversations/{OPS}/activities/{sent.activity_id}" and edit.status == 200
    [attachment] = edit.activity["attachments"]
    assert attachment["contentType"] == CONTENT_TYPE
    assert "actions" not in attachment["content"] and "Approved by S-ada" in texts(attachment["content"])
    assert bc.activity(OPS, sent.activity_id) == edit.activity  # the card as everyone sees it now
    assert not [p for p in bc.posts if p.method == "POST" and p.conversation_id == OPS][1:]  # nothing new posted
    with tctx.engine.connect() as conn:
        assert conn.execute(select(o.c.status).where(o.c.id == update.id)).scalar_one() == "sent"


def test_an_edited_text_is_what_goes_to_the_customer(tctx: Context, client: TestClient, bc: BotConnector,
                                                     sent: Posted1) -> None:
    edited = "Dear Ada, your 2 blue kettles (order 1042) are on their way soon. We are sorry for the wait."
    card = answered_card(post(client, press(bc, "draft_approve", sent, text=f"  {edited}\n")))
    assert edited in texts(card) and card["body"][-1]["text"] == "Edited before it was approved"
    draft = draft_row(tctx, sent.draft_id)
    assert (draft["status"], draft["text"], draft["edited"]) == ("approved", edited, True)
    [notice] = customer_rows(tctx, sent.draft_id)
    assert notice["body"].strip() == edited
    [entry] = audit_rows(tctx, sent.draft_id)
    assert f"+{edited}" in entry["after"]["diff"] and entry["before"]["text"] == draft["template_text"]


@pytest.mark.parametrize(("text", "error"), [("   ", "text: the edited message is empty"),
                                             ("x" * 1300, "text: 1300 characters, at most 1200")])
def test_a_bad_edit_keeps_the_edit_card_with_the_error(tctx: Context, client: TestClient, bc: BotConnector,
                                                       sent: Posted1, text: str, error: str) -> None:
    card = answered_card(post(client, press(bc, "draft_approve", sent, text=text)))
    assert card["body"][1] == {"type": "TextBlock", "text": error, "color": "Attention", "wrap": True}
    box = card["body"][-1]
    assert (box["type"], box["id"], box["value"]) == ("Input.Text", "text", text)  # kept, to fix
    assert [(a["type"], a["verb"]) for a in card["actions"]] == [("Action.Execute", "draft_approve"),
                                                                 ("Action.Execute", "draft_reject")]
    assert "associatedInputs" not in card["actions"][0]  # this Approve sends the box
    assert draft_row(tctx, sent.draft_id)["status"] == "pending"
    assert customer_rows(tctx, sent.draft_id) == [] and audit_rows(tctx, sent.draft_id) == []


def test_edit_pressed_as_a_button_opens_the_edit_box(tctx: Context, client: TestClient, bc: BotConnector,
                                                    sent: Posted1) -> None:
    card = answered_card(post(client, press(bc, "draft_edit", sent)))
    box = card["body"][-1]
    assert (box["type"], box["value"]) == ("Input.Text", draft_row(tctx, sent.draft_id)["text"])
    assert draft_row(tctx, sent.draft_id)["status"] == "pending"


def test_reject_sends_nothing_to_the_customer(tctx: Context, client: TestClient, bc: BotConnector,
                                              sent: Posted1) -> None:
    card = answered_card(post(client, press(bc, "draft_reject", sent, aad=BEA)))
    assert "Rejected by S-bea" in texts(card) and "actions" not in card
    draft = draft_row(tctx, sent.draft_id)
    assert (draft["status"], draft["decided_by"], draft["decided_via"]) == ("rejected", "S-bea", "teams")
    assert customer_rows(tctx, sent.draft_id) == []
    assert [(a["action"], a["actor"]) for a in audit_rows(tctx, sent.draft_id)] == [("draft_rejected", "S-bea")]
    worker(tctx)
    [edit] = bc.updates
    assert "Rejected by S-bea" in texts(edit.activity["attachments"][0]["content"])


@pytest.mark.parametrize(("aad", "told"), [
    (CID, "only staff with the approver role may approve, edit or reject drafts"),
    ("aad-stranger", "--teams-user aad-stranger"),
], ids=["no approver role", "unlinked"])
@pytest.mark.parametrize("verb", ["draft_approve", "draft_reject", "draft_edit"])
def test_only_an_approver_may_decide(tctx: Context, client: TestClient, bc: BotConnector, sent: Posted1,
                                     aad: str, told: str, verb: str) -> None:
    card = answered_card(post(client, press(bc, verb, sent, aad=aad, text="mine now" if verb != "draft_reject"
                                              else None)))
    line = card["body"][1]
    assert line["color"] == "Attention" and told in line["text"].replace("\\", "")
    assert [a["title"] for a in card["actions"]] == ["Approve", "Edit", "Reject"]  # the card, unchanged
    assert card["actions"][1]["card"]["body"][0]["value"] == draft_row(tctx, sent.draft_id)["text"]
    assert draft_row(tctx, sent.draft_id)["status"] == "pending"
    assert customer_rows(tctx, sent.draft_id) == [] and audit_rows(tctx, sent.draft_id) == []


def test_a_press_on_a_decided_card_hears_who_decided(tctx: Context, client: TestClient, bc: BotConnector,
                                                     sent: Posted1) -> None:
    answered_card(post(client, press(bc, "draft_approve", sent)))
    decided_at = draft_row(tctx, sent.draft_id)["decided_at"]
    for verb in ("draft_reject", "draft_approve", "draft_edit"):
        card = answered_card(post(client, press(bc, verb, sent, aad=BEA)))
        line = card["body"][1]
        assert line["color"] == "Warning" and line["text"].replace("\\", "").startswith("already approved by S-ada at")
        assert "actions" not in card and "Approved by S-ada" in texts(card)
    draft = draft_row(tctx, sent.draft_id)
    assert (draft["status"], draft["decided_by"], draft["decided_at"]) == ("approved", "S-ada", decided_at)
    assert len(customer_rows(tctx, sent.draft_id)) == 1 and len(audit_rows(tctx, sent.draft_id)) == 1


def test_two_approvers_at_once_approve_once(tctx: Context, client: TestClient, bc: BotConnector,
                                           sent: Posted1) -> None:
    gate = threading.Barrier(2)
    cards: dict[str, dict[str, Any]] = {}

    def click(aad: str) -> None:
        activity = press(bc, "draft_approve", sent, aad=aad)
        gate.wait()
        cards[aad] = answered_card(post(client, activity))

    threads = [threading.Thread(target=click, args=(aad,)) for aad in (ADA, BEA)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    draft = draft_row(tctx, sent.draft_id)
    winner = {ADA: "S-ada", BEA: "S-bea"}
    assert draft["status"] == "approved" and draft["decided_by"] in winner.values()
    loser = next(aad for aad, staff in winner.items() if staff != draft["decided_by"])
    assert f"already approved by {draft['decided_by']} at" in texts(cards[loser])
    assert "already" not in texts(cards[next(a for a in winner if a != loser)])
    assert len(customer_rows(tctx, sent.draft_id)) == 1
    assert [a["action"] for a in audit_rows(tctx, sent.draft_id)] == ["draft_approved"]
    worker(tctx)
    assert len(bc.updates) == 1  # the card, edited once
    assert [r["status"] for r in customer_rows(tctx, sent.draft_id)] in (["sent"], ["delivered"])  # the customer, once


def test_a_press_that_is_not_a_draft_is_a_bad_request(client: TestClient, bc: BotConnector, sent: Posted1) -> None:
    for value, message in (("x", "data.value: not a draft id"), ("9999", "data.value: draft 9999 not found")):
        got = post(client, press(bc, "draft_approve", sent, value=value)).json()
        assert (got["statusCode"], got["type"]) == (400, "application/vnd.microsoft.error")
        assert got["value"]["message"] == message


# -- the Action.Submit fallback ----------------------------------------------------------------------------

def submit(bc: BotConnector, data: dict[str, Any], card: Posted1, *, aad: str = ADA) -> dict[str, Any]:
    return bc.message("", value=data, conversation=f"{OPS};messageid={card.activity_id}", conversation_type="channel",
                      user=f"29:{aad}", aad=aad, name=aad, reply_to=card.activity_id)


def test_submit_fallback_decides_and_edits_the_card_in_place(tctx: Context, client: TestClient, bc: BotConnector,
                                                            sent: Posted1) -> None:
    edited = "Dear Ada, the kettles are late; sorry. We will write again when they ship."
    data = {"action": "draft_approve", "value": str(sent.draft_id), "text": edited}
    assert post(client, submit(bc, data, sent)).status_code == 202
    [edit] = bc.updates
    assert edit.path == f"/v3/conversations/{OPS};messageid={sent.activity_id}/activities/{sent.activity_id}"
    card = edit.activity["attachments"][0]["content"]
    assert "actions" not in card and "Approved by S-ada" in texts(card) and edited in texts(card)
    assert edit.activity["id"] == sent.activity_id and edit.activity["type"] == "message"
    draft = draft_row(tctx, sent.draft_id)
    assert (draft["status"], draft["text"], draft["decided_via"]) == ("approved", edited, "teams")
    assert [r["body"].strip() for r in customer_rows(tctx, sent.draft_id)] == [edited]
    assert [p for p in bc.posts if p.method == "POST" and p.reply_to_id] == []  # nothing more to say

    # A second press (another approver, the same old card): the card shows the decision, the presser hears it.
    again = {"action": "draft_reject", "value": str(sent.draft_id)}
    assert post(client, submit(bc, again, sent, aad=BEA)).status_code == 202
    told = [p for p in bc.posts if p.method == "POST" and p.reply_to_id]
    assert len(told) == 1 and told[0].activity["text"].replace("\\", "").startswith("already approved by S-ada")
    assert draft_row(tctx, sent.draft_id)["status"] == "approved" and len(customer_rows(tctx, sent.draft_id)) == 1


def test_submit_fallback_refusal_is_a_reply_and_the_card_stays(tctx: Context, client: TestClient,
                                                              bc: BotConnector, sent: Posted1) -> None:
    data = {"action": "draft_approve", "value": str(sent.draft_id)}
    assert post(client, submit(bc, data, sent, aad=CID)).status_code == 202
    assert bc.updates == []
    [told] = [p for p in bc.posts if p.method == "POST" and p.reply_to_id]
    assert "approver role" in told.activity["text"]
    assert draft_row(tctx, sent.draft_id)["status"] == "pending"
    assert bc.activity(OPS, sent.activity_id) == sent.post.activity  # the card as it was


# -- decisions made elsewhere --------------------------------------------------------------------------------

def test_a_decision_made_elsewhere_edits_the_teams_card(tctx: Context, bc: BotConnector, sent: Posted1) -> None:
    approvals.approve(tctx, sent.draft_id, approvals.Approver("S-api", frozenset({"approver"})), via="api")
    posts_before = len(bc.posts)
    worker(tctx)
    [edit] = bc.updates
    assert edit.path == f"/v3/conversations/{OPS}/activities/{sent.activity_id}"
    card = edit.activity["attachments"][0]["content"]
    assert "Approved by S-api" in texts(card) and "actions" not in card
    assert [p for p in bc.posts[posts_before:] if p.method == "POST"] == []  # an edit, no new message


def test_an_update_of_a_card_that_is_gone_fails_permanently(tctx: Context, bc: BotConnector, sent: Posted1) -> None:
    sender = TeamsSender(tctx.settings.teams, tctx.engine)
    outcome = {"kind": "approval_outcome", "title": "Draft #1: approved", "text": "Approved by S-api.",
               "fields": [], "actions": [], "note": "Approved by S-api."}

    def update(replace: str) -> Outgoing:
        return Outgoing(id=1, channel="teams", recipient=OPS, kind="approval_update", body="Approved by S-api.",
                        idempotency_key="u-1", payload={**outcome, "replace": replace, "draft_id": 1})

    with pytest.raises(PermanentError) as gone:
        asyncio.run(sender.send(update(f"{OPS}|activity-404")))
    assert gone.value.reason == "conversation_gone"
    # A row from before provider ids named the conversation: the recipient's conversation is used.
    asyncio.run(sender.send(update(sent.activity_id)))
    assert [(u.path, u.status) for u in bc.updates] == [
        (f"/v3/conversations/{OPS}/activities/activity-404", 404),
        (f"/v3/conversations/{OPS}/activities/{sent.activity_id}", 200)]
    assert texts(bc.updates[-1].activity["attachments"][0]["content"]).endswith("Approved by S-api.")


def test_the_edit_box_takes_the_configured_length_and_the_current_text(tctx: Context, bc: BotConnector,
                                                                      sent: Posted1) -> None:
    o = t.outbox
    with tctx.engine.begin() as conn:
        conn.execute(t.drafts.update().where(t.drafts.c.id == sent.draft_id).values(text="Reworded since."))
        row = conn.execute(select(o).where(o.c.kind == "approval_request")).one()
    sender = TeamsSender(tctx.settings.teams, tctx.engine, max_chars=300)  # [drafts] max_chars = 300
    msg = Outgoing(id=row.id, channel="teams", recipient=OPS, kind=row.kind, body=row.body,
                   idempotency_key="again", payload=row.payload)
    got = asyncio.run(sender.send(msg))
    card = bc.posts[-1].activity["attachments"][0]["content"]
    [box] = card["actions"][1]["card"]["body"]
    assert (box["maxLength"], box["value"]) == (300, "Reworded since.")
    assert got.provider_id is not None
    conversation, activity_id = split_provider_id(got.provider_id)
    assert conversation == OPS and bc.activity(OPS, activity_id) == bc.posts[-1].activity
