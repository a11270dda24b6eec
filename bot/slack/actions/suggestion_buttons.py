"""Approve / Reject on a reorder suggestion's card: action ids "bo:suggestion_approve|suggestion_reject",
value = the task id (services/reorder.py opens the task, prompts/notify/*/_card.j2 draws the buttons).

Acked at once; the clicking Slack user is the staff member linked to the account (door.who, in the
middleware), and the decision runs in a worker thread (services.suggestions, via "slack"). The card is then
redrawn in place (chat.update) with the outcome and no buttons. Of two clicks one decides; the other
redraws the card to the true outcome and is told privately "already approved by X at T". Someone without
the role a suggestion needs (procurement for a purchase, warehouse_manager for a transfer, ops or admin for
both), or an unlinked account, is told privately why, and the card stays as it is.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.actions.draft_buttons import Click, linked_click
from notifiers import slack_blocks
from notifiers.slack_blocks import ACTION_PREFIX
from services import suggestions
from services.chat import ChatUser
from services.context import Context

VIA = "slack"
ACTION_IDS = re.compile(rf"^{re.escape(ACTION_PREFIX)}suggestion_(approve|reject)$")


def decider(user: ChatUser) -> suggestions.Decider:
    return suggestions.Decider(staff_id=user.staff_id or "", roles=user.roles if user.linked else frozenset())


def _card(ctx: Context, task_id: int) -> dict[str, Any]:
    return suggestions.card_of(ctx, task_id)


async def redraw(click: Click, task_id: int) -> None:
    """The card the button is on, redrawn as the suggestion stands now (no buttons once decided)."""
    if click.card is None:
        return
    card = await asyncio.to_thread(_card, click.door.ctx, task_id)
    if card.get("actions"):
        return  # still open: the card is right as it is
    args = slack_blocks.message(card, str(card.get("text") or ""))
    await click.client.chat_update(channel=click.card[0], ts=click.card[1], **{"blocks": [], **args})


async def decide(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext,
                 client: AsyncWebClient) -> None:
    click = await linked_click(ack, body, context, client)
    if click is None:
        return
    verb = str(action["action_id"]).removeprefix(f"{ACTION_PREFIX}suggestion_")
    value = str(action.get("value", ""))
    if not value.isdigit():
        await click.tell(f"suggestion {value!r} not found")
        return
    task_id = int(value)
    ctx = click.door.ctx
    command = suggestions.approve if verb == "approve" else suggestions.reject
    try:
        await asyncio.to_thread(command, ctx, task_id, decider(click.user), via=VIA)
    except suggestions.AlreadyDecided as exc:
        await asyncio.gather(redraw(click, task_id), click.tell(str(exc)))
        return
    except (suggestions.NotAllowed, suggestions.SuggestionNotFound) as exc:
        await click.tell(str(exc))
        return
    try:
        await redraw(click, task_id)
    finally:
        click.door.kick()  # the ERP's webhook and the other cards' redraws go out


def register(app: AsyncApp) -> None:
    app.action(ACTION_IDS)(decide)
