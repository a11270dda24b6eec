"""Approving drafts from Slack, on both stores: the approval card's buttons, the Edit modal, and the card
redrawn in place, through signed requests on POST /slack/events (block_actions and view_submission as
Slack sends them), the real Bolt app, and a fake Slack Web API on 127.0.0.1.

A gold customer's backordered order makes a delay-notice draft (no LLM: the template's words, pending at
once) and its approval card, which the worker posts to the team's Slack channel.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.api import create_app
from bot.slack.actions import ACTION_IDS
from bot.slack.views import CALLBACK_IDS
from bot.slack.views.draft_edit import BLOCK_ID, INPUT_ID
from notifiers.senders.base import Outgoing, PermanentError
from notifiers.senders.slack import SlackSender
from notifiers.slack_blocks import card_blocks
from services.context import Context
from services.worker import drain_outbox
from store import tables as t
from tests.fakes.slack_api import FakeSlack
from tests.senders import failure_of, send_once
from tests.slack_bot import TEAM_CHANNEL, link, post, signer, slack_context

EDITED_MARK = "Edited before it was approved"


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": "2026-03-02T08:59:00Z", "source": "test",
            "data": data}


# Ada is a gold customer: a notice about her backordered order is a draft that waits for approval.
SEED = [
    ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
    ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40, "lead_time_days": 14}),
    ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "tier": "gold", "region": "north",
                                   "contacts": {"email": "ada@example.com"}}),
    ev("o1", "order.placed", {"order_id": "1042", "customer_id": "C1", "promised_date": "2026-03-05",
                              "lines": [{"line_id": "1", "sku": "KTL-200", "qty": 2, "unit_price": 40}]}),
]
# Slack accounts: two approvers, a customer-service agent (no approver role); U0STRANGER is linked to nobody.
STAFF = {"ana": (["approver"], "U0ANA"), "ben": (["approver", "ops"], "U0BEN"), "cy": (["customer_service"], "U0CY")}


@pytest.fixture
def sctx(ctx: Context, slack: FakeSlack) -> Context:
    return slack_context(ctx, slack, rate=20.0)


def seed(client: TestClient, ctx: Context) -> None:
    assert client.post("/events", json=SEED).status_code == 200
    for staff_id, (roles, slack_user) in STAFF.items():
        link(ctx, staff_id, roles, slack_user)


@pytest.fixture
def client(sctx: Context) -> Iterator[TestClient]:
    # As a context manager the app's event loop outlives each request: Bolt works after its ack.
    with TestClient(create_app(sctx, background_applier=False)) as c:
        seed(c, sctx)
        yield c


# -- reading the store ------------------------------------------------------------------------------
def the_draft(ctx: Context) -> Mapping[str, Any]:
    with ctx.engine.connect() as conn:
        [row] = conn.execute(select(t.drafts)).mappings().all()
    return row


def outbox(ctx: Context, **where: Any) -> list[Mapping[str, Any]]:
    o = t.outbox
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(o).where(*(o.c[k] == v for k, v in where.items())).order_by(o.c.id))
                    .mappings())


def customer_rows(ctx: Context) -> list[Mapping[str, Any]]:
    return outbox(ctx, audience="customer")


def audits(ctx: Context, action: str) -> list[Mapping[str, Any]]:
    a = t.audit_log
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(a).where(a.c.action == action).order_by(a.c.id)).mappings())


def posted_card(ctx: Context) -> tuple[str, str]:
    """Send what is due (the approval card among it) and return the card's message: (channel, ts)."""
    asyncio.run(drain_outbox(ctx))
    [card] = outbox(ctx, kind="approval_request", channel="slack")
    assert card["status"] == "sent", card["error"]
    channel, _, ts = card["provider_id"].partition(":")
    return channel, ts


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.02)


# -- Slack's side -----------------------------------------------------------------------------------
def click(client: TestClient, slack: FakeSlack, user: str, verb: str, draft_id: int, card: tuple[str, str],
          trigger_id: str = "13345224609.738474920.8088930838d88f008e0") -> Any:
    r = post(client, signer.block_actions(user_id=user, action_id=f"bo:draft_{verb}", value=str(draft_id),
                                          channel_id=card[0], message_ts=card[1], trigger_id=trigger_id,
                                          response_url=slack.response_url(f"{user}-{verb}")))
    assert r.status_code == 200 and r.text == ""  # acked at once, with nothing in the ack
    return r


def submit(client: TestClient, view: dict[str, Any], user: str, text: str) -> Any:
    r = post(client, signer.view_submission(view, user_id=user, values={BLOCK_ID: {INPUT_ID: text}}))
    assert r.status_code == 200
    return r


def blocks_of(call: Any) -> list[dict[str, Any]]:
    return list(call.args["blocks"])


def types(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["type"] for b in blocks]


def context_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]


def section_text(blocks: list[dict[str, Any]]) -> str:
    return next(b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b)


def ephemerals(slack: FakeSlack, user: str | None = None) -> list[Any]:
    return [c for c in slack.calls("chat.postEphemeral") if user is None or c.args["user"] == user]


# -- the card ---------------------------------------------------------------------------------------
def test_the_approval_card_carries_approve_edit_and_reject_for_the_draft(client: TestClient, sctx: Context,
                                                                        slack: FakeSlack) -> None:
    channel, _ = posted_card(sctx)
    draft = the_draft(sctx)
    assert channel == TEAM_CHANNEL and draft["status"] == "pending"
    [message] = [c for c in slack.calls("chat.postMessage") if c.args.get("channel") == TEAM_CHANNEL
                 and any(b["type"] == "actions" for b in c.args.get("blocks", []))]
    buttons = next(b for b in blocks_of(message) if b["type"] == "actions")["elements"]
    assert [(b["action_id"], b["value"], b.get("style")) for b in buttons] == [
        ("bo:draft_approve", str(draft["id"]), "primary"), ("bo:draft_edit", str(draft["id"]), None),
        ("bo:draft_reject", str(draft["id"]), "danger")]
    assert all(ACTION_IDS.match(b["action_id"]) for b in buttons)
    assert draft["text"].splitlines()[0] in section_text(blocks_of(message))
    assert CALLBACK_IDS == ("draft_edit",)


# -- Approve and Reject -----------------------------------------------------------------------------
def test_approve_sends_the_text_once_and_redraws_the_card_in_place(client: TestClient, sctx: Context,
                                                                   slack: FakeSlack) -> None:
    card = posted_card(sctx)
    draft = the_draft(sctx)
    assert customer_rows(sctx) == []  # nothing reaches the customer before an approval
    click(client, slack, "U0ANA", "approve", draft["id"], card)
    [update] = slack.wait_for("chat.update")
    assert (update.args["channel"], update.args["ts"]) == card
    blocks = blocks_of(update)
    assert "actions" not in types(blocks)  # no buttons left to click
    assert draft["text"].splitlines()[0] in section_text(blocks)
    assert any("Approved by ana at " in n for n in context_texts(blocks))
    assert EDITED_MARK not in json.dumps(blocks)
    decided = the_draft(sctx)
    assert (decided["status"], decided["decided_by"], decided["decided_via"]) == ("approved", "ana", "slack")
    [sent] = customer_rows(sctx)
    assert sent["body"] == draft["text"] and sent["cause"] == f"draft:{draft['id']}"
    [audit] = audits(sctx, "draft_approved")
    assert audit["actor"] == "ana" and audit["entity_id"] == str(draft["id"])
    assert audit["after"]["via"] == "slack" and audit["after"]["edited"] is False and audit["after"]["diff"] == ""
    assert ephemerals(slack) == []

    # A second click (or one on a stale copy of the card): the true outcome, and who decided it, privately.
    click(client, slack, "U0ANA", "approve", draft["id"], card)
    [told] = slack.wait_for("chat.postEphemeral")
    assert told.args["channel"] == card[0] and told.args["user"] == "U0ANA"
    assert told.args["text"].startswith("already approved by ana at ")
    again = slack.wait_for("chat.update", 2)[1]
    assert (again.args["channel"], again.args["ts"]) == card and "actions" not in types(blocks_of(again))
    assert len(customer_rows(sctx)) == 1 and len(audits(sctx, "draft_approved")) == 1

    # The worker redraws it once more from the approval_update row, and sends the customer's message.
    asyncio.run(drain_outbox(sctx))
    [row] = outbox(sctx, kind="approval_update")
    assert row["status"] == "sent" and row["provider_id"] == f"{card[0]}:{card[1]}"
    redrawn = slack.wait_for("chat.update", 3)[2]
    assert (redrawn.args["channel"], redrawn.args["ts"]) == card and "actions" not in types(blocks_of(redrawn))
    assert not [c for c in slack.calls("chat.postMessage") if c.args.get("ts") == card[1]]


def test_reject_sends_nothing_and_shows_who_rejected(client: TestClient, sctx: Context, slack: FakeSlack) -> None:
    card = posted_card(sctx)
    draft = the_draft(sctx)
    click(client, slack, "U0BEN", "reject", draft["id"], card)
    [update] = slack.wait_for("chat.update")
    assert (update.args["channel"], update.args["ts"]) == card
    assert "actions" not in types(blocks_of(update))
    assert any("Rejected by ben at " in n for n in context_texts(blocks_of(update)))
    decided = the_draft(sctx)
    assert (decided["status"], decided["decided_by"], decided["decided_via"]) == ("rejected", "ben", "slack")
    assert customer_rows(sctx) == []
    [audit] = audits(sctx, "draft_rejected")
    assert audit["actor"] == "ben" and audit["after"]["via"] == "slack"
    # Approving it now is too late: the card stays rejected and the clicker hears so.
    click(client, slack, "U0ANA", "approve", draft["id"], card)
    assert slack.wait_for("chat.postEphemeral")[0].args["text"].startswith("already rejected by ben at ")
    assert the_draft(sctx)["status"] == "rejected" and customer_rows(sctx) == []


def test_no_approver_role_or_no_link_is_told_privately_and_the_card_stays(client: TestClient, sctx: Context,
                                                                          slack: FakeSlack) -> None:
    card = posted_card(sctx)
    draft = the_draft(sctx)
    click(client, slack, "U0CY", "approve", draft["id"], card)
    click(client, slack, "U0CY", "edit", draft["id"], card)
    refused = slack.wait_for("chat.postEphemeral", 2)
    assert all(c.args["user"] == "U0CY" and c.args["channel"] == card[0] for c in refused)
    assert all("approver role" in c.args["text"] for c in refused)  # names the role needed
    click(client, slack, "U0STRANGER", "reject", draft["id"], card)
    [unlinked] = slack.wait_for("chat.postEphemeral", 3)[2:]
    assert unlinked.args["user"] == "U0STRANGER"
    assert "is not linked to a member of the team yet" in unlinked.args["text"]
    assert "--slack-user U0STRANGER" in unlinked.args["text"]
    # An unknown draft id (a card from another install, a hand-made request) is refused the same way.
    click(client, slack, "U0ANA", "approve", 999_999, card)
    assert "draft 999999 not found" in slack.wait_for("chat.postEphemeral", 4)[3].args["text"]
    assert slack.calls("chat.update") == [] and slack.calls("views.open") == []
    assert the_draft(sctx)["status"] == "pending" and customer_rows(sctx) == []
    assert audits(sctx, "draft_approved") == [] and audits(sctx, "draft_rejected") == []


@pytest.mark.parametrize("second", ["approve", "reject"])
def test_two_approvers_at_once_give_one_outcome(client: TestClient, sctx: Context, slack: FakeSlack,
                                                second: str) -> None:
    card = posted_card(sctx)
    draft = the_draft(sctx)
    start = threading.Barrier(2)
    acked: list[int] = []

    def clicks(user: str, verb: str) -> None:
        signed = signer.block_actions(user_id=user, action_id=f"bo:draft_{verb}", value=str(draft["id"]),
                                      channel_id=card[0], message_ts=card[1],
                                      response_url=slack.response_url(user))
        start.wait(5)
        acked.append(post(client, signed).status_code)

    both = [threading.Thread(target=clicks, args=("U0ANA", "approve")),
            threading.Thread(target=clicks, args=("U0BEN", second))]
    for th in both:
        th.start()
    for th in both:
        th.join(10)
    assert acked == [200, 200]
    [told] = slack.wait_for("chat.postEphemeral")
    updates = slack.wait_for("chat.update", 2)  # the winner's redraw and the loser's, both the one outcome
    decided = the_draft(sctx)
    winner = {"ana": "U0ANA", "ben": "U0BEN"}[decided["decided_by"]]
    assert told.args["user"] != winner and told.args["user"] in ("U0ANA", "U0BEN")
    assert told.args["text"].startswith(f"already {decided['status']} by {decided['decided_by']} at ")
    for update in updates:
        assert (update.args["channel"], update.args["ts"]) == card
        assert any(f"{decided['status'].capitalize()} by {decided['decided_by']} at " in n
                   for n in context_texts(blocks_of(update)))
    assert len(audits(sctx, "draft_approved")) + len(audits(sctx, "draft_rejected")) == 1
    assert len(customer_rows(sctx)) == (1 if decided["status"] == "approved" else 0)
    assert len(ephemerals(slack)) == 1 and len(slack.calls("chat.update")) == 2


# -- Edit -------------------------------------------------------------------------------------------
def open_modal(client: TestClient, slack: FakeSlack, user: str, draft_id: int, card: tuple[str, str],
               count: int = 1) -> dict[str, Any]:
    click(client, slack, user, "edit", draft_id, card, trigger_id=f"trigger-{user}-{count}")
    opened = slack.wait_for("views.open", count)[count - 1]
    assert opened.args["trigger_id"] == f"trigger-{user}-{count}"
    return dict(opened.args["view"])


def test_edit_opens_the_text_and_submitting_approves_the_edit(client: TestClient, sctx: Context,
                                                              slack: FakeSlack) -> None:
    card = posted_card(sctx)
    draft = the_draft(sctx)
    view = open_modal(client, slack, "U0ANA", draft["id"], card)
    assert view["type"] == "modal" and view["callback_id"] == "draft_edit"
    assert json.loads(view["private_metadata"]) == {"draft_id": draft["id"], "channel": card[0], "ts": card[1]}
    assert len(view["title"]["text"]) <= 24 and f"#{draft['id']}" in view["title"]["text"]
    [block] = view["blocks"]
    assert block["type"] == "input" and block["block_id"] == BLOCK_ID
    element = block["element"]
    assert element["type"] == "plain_text_input" and element["action_id"] == INPUT_ID and element["multiline"]
    assert element["initial_value"] == draft["text"]
    assert element["max_length"] == sctx.settings.drafts.max_chars
    assert the_draft(sctx)["status"] == "pending"  # opening the modal decides nothing

    edited = draft["text"] + "\nWe have added a gift voucher to your account."
    r = submit(client, view, "U0ANA", edited)
    assert r.text == ""  # an empty ack closes the modal
    [update] = slack.wait_for("chat.update")
    assert (update.args["channel"], update.args["ts"]) == card
    blocks = blocks_of(update)
    assert "actions" not in types(blocks) and "gift voucher" in section_text(blocks)
    notes = context_texts(blocks)
    assert any("Approved by ana at " in n for n in notes) and EDITED_MARK in notes
    decided = the_draft(sctx)
    assert decided["status"] == "approved" and decided["edited"] and decided["text"] == edited
    assert decided["decided_by"] == "ana" and decided["decided_via"] == "slack"
    [sent] = customer_rows(sctx)
    assert sent["body"] == edited
    [audit] = audits(sctx, "draft_approved")
    assert audit["before"]["text"] == draft["text"] and audit["after"]["text"] == edited
    assert audit["after"]["edited"] is True and audit["after"]["via"] == "slack"
    assert "+We have added a gift voucher to your account." in audit["after"]["diff"]
    # Submitting the same modal again (a double submit) changes nothing and says who approved.
    again = submit(client, view, "U0ANA", edited + " Twice.")
    assert again.json()["response_action"] == "errors"
    assert again.json()["errors"][BLOCK_ID].startswith("already approved by ana at ")
    assert the_draft(sctx)["text"] == edited and len(customer_rows(sctx)) == 1


def test_an_edit_that_cannot_be_sent_keeps_the_modal_open_with_the_reason(client: TestClient, sctx: Context,
                                                                          slack: FakeSlack) -> None:
    card = posted_card(sctx)
    draft = the_draft(sctx)
    view = open_modal(client, slack, "U0BEN", draft["id"], card)
    empty = submit(client, view, "U0BEN", "   \n ")
    assert empty.json() == {"response_action": "errors", "errors": {BLOCK_ID: "the edited message is empty"}}
    limit = sctx.settings.drafts.max_chars
    long = submit(client, view, "U0BEN", "x" * (limit + 1))  # Slack's max_length is the browser's; we check too
    assert long.json() == {"response_action": "errors",
                           "errors": {BLOCK_ID: f"{limit + 1} characters, at most {limit}"}}
    # Someone who lost the approver role (or never had it) keeps the modal open too, told why.
    not_allowed = submit(client, view, "U0CY", "Hello Ada")
    assert "approver role" in not_allowed.json()["errors"][BLOCK_ID]
    unlinked = submit(client, view, "U0STRANGER", "Hello Ada")
    assert "--slack-user U0STRANGER" in unlinked.json()["errors"][BLOCK_ID]
    assert the_draft(sctx)["status"] == "pending" and customer_rows(sctx) == []
    assert slack.calls("chat.update") == [] and audits(sctx, "draft_approved") == []


def test_submitting_after_another_approver_decided_shows_who_and_redraws(client: TestClient, sctx: Context,
                                                                         slack: FakeSlack) -> None:
    card = posted_card(sctx)
    draft = the_draft(sctx)
    view = open_modal(client, slack, "U0ANA", draft["id"], card)
    click(client, slack, "U0BEN", "approve", draft["id"], card)  # while Ana is still typing
    slack.wait_for("chat.update")
    late = submit(client, view, "U0ANA", "Hello Ada, sorry for the wait.")
    assert late.json()["response_action"] == "errors"
    assert late.json()["errors"][BLOCK_ID].startswith("already approved by ben at ")
    redrawn = slack.wait_for("chat.update", 2)[1]
    assert (redrawn.args["channel"], redrawn.args["ts"]) == card
    assert any("Approved by ben at " in n for n in context_texts(blocks_of(redrawn)))
    decided = the_draft(sctx)
    assert decided["decided_by"] == "ben" and decided["text"] == draft["text"] and not decided["edited"]
    assert [r["body"] for r in customer_rows(sctx)] == [draft["text"]]
    # Edit on the now decided card opens no modal: the clicker hears the outcome.
    click(client, slack, "U0ANA", "edit", draft["id"], card)
    assert slack.wait_for("chat.postEphemeral")[0].args["text"].startswith("already ")
    assert len(slack.calls("views.open")) == 1


def test_a_forged_form_names_no_draft(client: TestClient, sctx: Context, slack: FakeSlack) -> None:
    posted_card(sctx)
    forged = {"callback_id": "draft_edit", "private_metadata": "not json", "blocks": []}
    r = submit(client, forged, "U0ANA", "Hello")
    assert r.json()["response_action"] == "errors" and "no draft" in r.json()["errors"][BLOCK_ID]
    assert the_draft(sctx)["status"] == "pending" and customer_rows(sctx) == []


# -- decided elsewhere: the worker redraws the card -------------------------------------------------
def test_a_draft_approved_through_the_api_redraws_the_slack_card(client: TestClient, sctx: Context,
                                                                 slack: FakeSlack) -> None:
    card = posted_card(sctx)
    draft = the_draft(sctx)
    posts_before = len(slack.calls("chat.postMessage"))  # the card, and whatever else the team was told
    r = client.post(f"/drafts/{draft['id']}/approve", json={"staff_id": "ana", "text": "Hello Ada, it is late."})
    assert r.status_code == 200, r.text
    assert slack.calls("chat.update") == []  # the API does not talk to Slack: the worker does
    asyncio.run(drain_outbox(sctx))
    [update] = slack.wait_for("chat.update")
    assert (update.args["channel"], update.args["ts"]) == card
    blocks = blocks_of(update)
    assert "actions" not in types(blocks) and "Hello Ada, it is late." in section_text(blocks)
    assert any("Approved by ana at " in n for n in context_texts(blocks))
    assert "Hello Ada, it is late." in update.args["text"]  # the notification's fallback text
    [row] = outbox(sctx, kind="approval_update")
    assert row["status"] == "sent" and row["provider_id"] == f"{card[0]}:{card[1]}"
    assert row["payload"]["replace"] == f"{card[0]}:{card[1]}"
    assert len(slack.calls("chat.postMessage")) == posts_before  # redrawn in place: nothing new posted


def test_the_worker_is_kicked_after_a_click(ctx: Context, slack: FakeSlack) -> None:
    # The worker polls every 5 minutes here: only the click's kick makes it send within the test.
    wctx = slack_context(ctx, slack, rate=20.0, poll_seconds=300, jobs_every_seconds=300)
    with TestClient(create_app(wctx, background_applier=False, notify_worker=True)) as c:
        seed(c, wctx)  # POST /events kicks the worker: it posts the card
        wait_until(lambda: any(r["status"] == "sent" for r in outbox(wctx, kind="approval_request")),
                   "the card posted")
        [row] = outbox(wctx, kind="approval_request", channel="slack")
        channel, _, ts = row["provider_id"].partition(":")
        click(c, slack, "U0ANA", "approve", the_draft(wctx)["id"], (channel, ts))
        slack.wait_for("chat.update", 2)  # the click's redraw, then the worker's, from its approval_update row
        wait_until(lambda: all(r["status"] != "pending" for r in customer_rows(wctx)) and customer_rows(wctx) != [],
                   "the customer's message taken by the worker")
    assert [r["status"] for r in outbox(wctx, kind="approval_update")] == ["sent"]


# -- the sender's approval_update, and the blocks ---------------------------------------------------
def update_of(replace: str) -> Outgoing:
    card = {"kind": "approval_outcome", "title": "Draft #7: approved", "text": "Hello Ada", "fields": [],
            "actions": [], "note": "Approved by ana at Mar 2, 2026, 9:00 AM.", "replace": replace, "draft_id": 7}
    return Outgoing(id=1, channel="slack", recipient=TEAM_CHANNEL, kind="approval_update", body="Hello Ada",
                    idempotency_key="u1", payload=card)


def test_an_approval_update_edits_the_named_message_and_posts_nothing(sctx: Context, slack: FakeSlack) -> None:
    def sender() -> SlackSender:
        return SlackSender(sctx.settings.slack, sctx.engine)

    sent = asyncio.run(send_once(sender(), update_of(f"{TEAM_CHANNEL}:1767225600.000042")))
    assert sent.provider_id == f"{TEAM_CHANNEL}:1767225600.000042"
    [call] = slack.calls()
    assert call.method == "chat.update" and call.args["ts"] == "1767225600.000042"
    assert call.args["channel"] == TEAM_CHANNEL and call.args["text"] == "Hello Ada"
    assert types(blocks_of(call)) == ["header", "section", "context", "context"]
    bad = asyncio.run(failure_of(sender(), update_of("nonsense")))
    assert isinstance(bad, PermanentError) and bad.reason == "bad_replace"
    slack.fail_next("chat.update", "message_not_found")
    gone = asyncio.run(failure_of(sender(), update_of(f"{TEAM_CHANNEL}:1767225600.000043")))
    assert isinstance(gone, PermanentError) and gone.reason == "message_not_found"
    assert len(slack.calls()) == 2  # the malformed one never reached Slack


def test_an_outcome_card_shows_its_note_and_the_edit_and_no_buttons() -> None:
    card = {"kind": "approval_outcome", "title": "Draft #7: approved", "text": "Hi <!channel>", "fields": [],
            "actions": [], "note": "Approved by <@U1> at 9:00.", "edited": True}
    blocks = card_blocks(card)
    assert types(blocks) == ["header", "section", "context", "context"]
    assert blocks[2]["elements"] == [{"type": "mrkdwn", "text": "Approved by &lt;@U1&gt; at 9:00."},
                                     {"type": "mrkdwn", "text": EDITED_MARK}]
    assert blocks[1]["text"]["text"] == "Hi &lt;!channel&gt;"
    styled = card_blocks({**card, "note": None, "edited": False, "actions": [
        {"id": "draft_approve", "label": "Approve", "value": "7"},
        {"id": "show_waiting", "label": "Show", "value": "A", "style": "danger"},
        {"id": "open_task", "label": "Open", "value": "1", "style": "blink"}]})
    assert [b.get("style") for b in styled[2]["elements"]] == ["primary", "danger", None]
