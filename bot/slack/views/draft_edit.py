"""The Edit modal of a draft's approval card (callback_id "draft_edit"): the text, editable; submit approves it.

The Edit button (bot/slack/actions/draft_buttons.py) opens it with the draft's text in one multiline input
(at most [drafts] max_chars, and Slack's own 3,000 for an input); private_metadata carries the draft id and
the card's message (channel, ts) so the card is redrawn on submission. The submission is answered in the
ack itself, within Slack's 3 seconds, because its outcome decides the answer:

- approved: the ack closes the modal; the card is redrawn in place with the edited text and the outcome;
- an edit we cannot send (empty, too long): the input shows the reason (response_action "errors");
- already decided (a second submission, another approver first): the input shows "already approved by X
  at T", and the card is redrawn to that outcome;
- no approver role, an unlinked account, an unknown draft: the input says so.
"""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.door import Card, Door
from notifiers.slack_blocks import plain
from prompts import render
from services import approvals
from services.chat import ChatUser

CALLBACK_ID = "draft_edit"
BLOCK_ID = "draft_text"  # the input block: response_action "errors" names it
INPUT_ID = "text"
INPUT_MAX = 3000  # Slack's limit for a plain_text_input's max_length
TITLE_MAX = 24  # a modal's title, submit and close texts
LABEL_MAX = 2000
ERROR_MAX = 2000


def modal(draft: dict[str, Any], card: Card, *, max_chars: int) -> dict[str, Any]:
    """The modal for views.open, prefilled with the draft's text."""
    limit = min(max_chars, INPUT_MAX)
    meta = {"draft_id": draft["id"], "channel": card[0] if card else None, "ts": card[1] if card else None}
    return {
        "type": "modal", "callback_id": CALLBACK_ID, "private_metadata": json.dumps(meta),
        "title": plain(render("slack/en/draft_edit_title.txt.j2", draft_id=draft["id"]), TITLE_MAX),
        "submit": plain(render("slack/en/draft_edit_submit.txt.j2"), TITLE_MAX),
        "close": plain(render("slack/en/draft_edit_close.txt.j2"), TITLE_MAX),
        "blocks": [{
            "type": "input", "block_id": BLOCK_ID,
            "label": plain(render("slack/en/draft_edit_label.txt.j2"), LABEL_MAX),
            "hint": plain(render("slack/en/draft_edit_hint.txt.j2", channel=draft["channel"]), LABEL_MAX),
            "element": {"type": "plain_text_input", "action_id": INPUT_ID, "multiline": True,
                        "initial_value": str(draft["text"])[:limit], "max_length": limit},
        }],
    }


def submitted(view: dict[str, Any]) -> tuple[int, Card, str]:
    """(draft id, card, edited text) from a view_submission; DraftNotFound when the metadata is not ours."""
    try:
        meta = json.loads(view.get("private_metadata") or "")
        draft_id = meta["draft_id"]
    except (ValueError, TypeError, KeyError):
        raise approvals.DraftNotFound("this form names no draft") from None
    if not isinstance(draft_id, int) or isinstance(draft_id, bool):
        raise approvals.DraftNotFound(f"draft {draft_id!r} not found")
    channel, ts = meta.get("channel"), meta.get("ts")
    card = (str(channel), str(ts)) if channel and ts else None
    values = ((view.get("state") or {}).get("values") or {}).get(BLOCK_ID) or {}
    return draft_id, card, str((values.get(INPUT_ID) or {}).get("value") or "")


async def refuse(ack: AsyncAck, reason: str) -> None:
    """Keep the modal open with `reason` under the input (Slack shows it as plain text)."""
    await ack(response_action="errors", errors={BLOCK_ID: reason[:ERROR_MAX]})


async def submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext,
                 client: AsyncWebClient) -> None:
    door: Door = context["door"]
    user: ChatUser = context["chat_user"]
    if not user.linked:
        await refuse(ack, door.unlinked(str(body["user"]["id"])))
        return
    try:
        draft_id, card, text = submitted(view)
        await door.approve(user, draft_id, text=text)
    except approvals.BadEdit as exc:
        await refuse(ack, str(exc).removeprefix("text: "))  # the field is the input the error sits under
        return
    except approvals.AlreadyDecided as exc:
        await refuse(ack, str(exc))
        await door.redraw(client, card, draft_id)
        return
    except (approvals.NotAllowed, approvals.DraftNotFound) as exc:
        await refuse(ack, str(exc))
        return
    await ack()  # closes the modal
    try:
        await door.redraw(client, card, draft_id)
    finally:
        door.kick()  # the customer's message and the other cards' redraws go out


def register(app: AsyncApp) -> None:
    app.view(CALLBACK_ID)(submit)
