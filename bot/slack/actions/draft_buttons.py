"""Approve / Edit / Reject on a draft's approval card: action ids "bo:draft_approve|draft_edit|draft_reject",
value = the draft id (services/drafts.py approval cards, notifiers/render.py card actions).

Approve and Reject are acked at once; the clicking Slack user is the staff member linked to the account
(door.who, in the middleware), and the decision runs in a worker thread (services.approvals, via "slack").
Then the card message is redrawn in place (chat.update): the draft's text, who did what and when, no
buttons. Of two clicks on one draft (a second click, a stale card, two approvers at once) one decides;
the other redraws the card to the true outcome and is told privately (chat.postEphemeral) "already
approved by X at T". Someone without an approver role, or an unlinked account, is told privately why,
and the card stays as it is. Edit opens the modal of bot/slack/views/draft_edit.py with the text.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.door import Card, Door
from bot.slack.views import draft_edit
from notifiers.slack_blocks import ACTION_PREFIX, escape
from services import approvals
from services.chat import ChatUser

DECISIONS = ("approve", "reject")
ACTION_IDS = re.compile(rf"^{re.escape(ACTION_PREFIX)}draft_({'|'.join((*DECISIONS, 'edit'))})$")
DECIDE_IDS = re.compile(rf"^{re.escape(ACTION_PREFIX)}draft_({'|'.join(DECISIONS)})$")
EDIT_ID = f"{ACTION_PREFIX}draft_edit"


def card_of(body: dict[str, Any]) -> Card:
    """The message the button is on (channel, ts), to redraw it; None for a button on no message."""
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    if container.get("type") == "message" and channel and ts:
        return str(channel), str(ts)
    return None


def draft_id_of(value: str) -> int:
    if not value.isdigit():
        raise approvals.DraftNotFound(f"draft {value!r} not found")
    return int(value)


async def tell(client: AsyncWebClient, card: Card, user_id: str, text: str) -> None:
    """Say `text` (mrkdwn) to the clicker only: ephemeral beside the card, or in their DM with the app."""
    if card is None:
        await client.chat_postMessage(channel=user_id, text=text, unfurl_links=False)
        return
    await client.chat_postEphemeral(channel=card[0], user=user_id, text=text)


@dataclass(frozen=True, slots=True)
class Click:
    """A press of a draft's button by a linked account: who pressed it, on which card, and how to answer."""

    door: Door
    user: ChatUser
    client: AsyncWebClient
    card: Card
    clicker: str

    async def tell(self, text: str) -> None:
        """Say plain `text` (escaped) to the clicker only."""
        await tell(self.client, self.card, self.clicker, escape(text))

    async def redraw_and_tell(self, draft_id: int, text: str) -> None:
        """The card redrawn to the draft's true outcome, and the clicker told why their click did nothing."""
        await asyncio.gather(self.door.redraw(self.client, self.card, draft_id), self.tell(text))


async def linked_click(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext,
                       client: AsyncWebClient) -> Click | None:
    """Ack the click; None when the account is linked to no staff member (they are told how to link it)."""
    await ack()
    door: Door = context["door"]
    user: ChatUser = context["chat_user"]
    click = Click(door, user, client, card_of(body), str(body["user"]["id"]))
    if not user.linked:
        await click.tell(door.unlinked(click.clicker))
        return None
    return click


async def decide(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext,
                 client: AsyncWebClient) -> None:
    click = await linked_click(ack, body, context, client)
    if click is None:
        return
    door, user = click.door, click.user
    verb = str(action["action_id"]).removeprefix(f"{ACTION_PREFIX}draft_")
    try:
        draft_id = draft_id_of(str(action.get("value", "")))
    except approvals.DraftNotFound as exc:
        await click.tell(str(exc))
        return
    try:
        if verb == "approve":
            await door.approve(user, draft_id)
        else:
            await door.reject(user, draft_id)
    except approvals.AlreadyDecided as exc:
        await click.redraw_and_tell(draft_id, str(exc))
        return
    except (approvals.NotAllowed, approvals.DraftNotFound) as exc:
        await click.tell(str(exc))
        return
    try:
        await door.redraw(client, click.card, draft_id)
    finally:
        door.kick()  # the customer's message (an approval) and the other cards' redraws go out


async def edit(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext,
               client: AsyncWebClient) -> None:
    """Open the edit modal (within the trigger's 3 seconds) for someone who may approve a draft still pending."""
    click = await linked_click(ack, body, context, client)
    if click is None:
        return
    door = click.door
    refused = await asyncio.to_thread(door.refusal, click.user)
    if refused is not None:
        await click.tell(refused)
        return
    try:
        draft_id = draft_id_of(str(action.get("value", "")))
        draft = await door.draft(draft_id)
    except approvals.DraftNotFound as exc:
        await click.tell(str(exc))
        return
    if draft["status"] != "pending":
        await click.redraw_and_tell(draft_id, approvals.decided_message(draft))
        return
    view = draft_edit.modal(draft, click.card, max_chars=door.ctx.settings.drafts.max_chars)
    await client.views_open(trigger_id=str(body["trigger_id"]), view=view)


def register(app: AsyncApp) -> None:
    app.action(DECIDE_IDS)(decide)
    app.action(EDIT_ID)(edit)
