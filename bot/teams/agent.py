"""The Teams bot's turns: messages and @mentions, card buttons, installs. Thin: who, what, answer, reply.

A draft's buttons (draft_approve / draft_reject / draft_edit), pressed as Action.Execute or arriving as the
Action.Submit fallback, are bot.teams.approvals' to answer; a task's (task_take / task_finish / task_reassign)
bot.teams.tasks'.

Every turn stores the conversation reference under the conversation id and, in a 1:1 chat, under the
user's id too, so alerts can later reach a channel (StaffContact.teams_conversation) or a person. The answers come from
services.chat (already rendered as Markdown for "teams"); the store work runs in a thread, off the loop.

A message is answered once: Teams redelivers one it saw no 2xx for, so each is recorded as seen, keyed by
conversation and activity id (Teams' message ids are millisecond timestamps, unique only within a
conversation). A turn that fails after that (the reply post refused) forgets it again, so the
redelivery Teams then makes is answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
from http import HTTPStatus
from typing import Any

from microsoft_agents.activity import Activity, ActivityTypes, AdaptiveCardInvokeResponse, TextFormatTypes
from microsoft_agents.hosting.core import (
    AgentApplication,
    ApplicationOptions,
    Connections,
    MemoryStorage,
    MessageFactory,
    TurnContext,
    TurnState,
)

from bot.teams import approvals, suggestions, tasks
from notifiers.adaptive_cards import CONTENT_TYPE, answer_card
from services.channels import staff_user
from services.chat import ACTIONS, ChatReply, ChatUser, act, reply
from services.context import Context
from store import chat_state
from store.db import unit_of_work

CHANNEL = "teams"
MENTION = re.compile(r"<at[^>]*>.*?</at>", re.IGNORECASE | re.DOTALL)
TAGS = re.compile(r"<[^>]+>")  # Teams wraps rich text in HTML; the intents read plain words
ANY_VERB = re.compile(r".+")
DELIVERY_KEY_MAX = 200  # inbound_messages.message_id


def user_key(activity: Activity) -> str | None:
    """The person behind an activity: their Entra object id when Teams gives it, else the Teams user id."""
    who = activity.from_property
    if who is None:
        return None
    return who.aad_object_id or who.id


def plain_text(text: str | None) -> str:
    """A message as the user typed it: without @mentions (the bot's and anyone's) or markup."""
    return " ".join(html.unescape(TAGS.sub(" ", MENTION.sub(" ", text or ""))).split())


def reference_json(activity: Activity) -> dict[str, Any]:
    ref = activity.get_conversation_reference()
    return ref.model_dump(mode="json", by_alias=True, exclude_none=True)


def delivery_key(activity: Activity) -> str | None:
    """What makes a message one delivery: its conversation and its id (ids repeat across conversations)."""
    if not activity.id:
        return None
    conversation = activity.conversation.id if activity.conversation is not None else ""
    key = f"{conversation}|{activity.id}"
    # Personal chat ids run long; a cut key could make two messages one, a digest cannot.
    return key if len(key) <= DELIVERY_KEY_MAX else hashlib.sha256(key.encode()).hexdigest()


def forget(ctx: Context, activity: Activity) -> None:
    """Undo first_delivery for a message whose answer never went out, so its redelivery is answered."""
    key = delivery_key(activity)
    if key is None:
        return
    with unit_of_work(ctx.engine) as conn:
        chat_state.forget_delivery(conn, CHANNEL, key)


def _remember(ctx: Context, activity: Activity, *, dedupe: bool) -> bool:
    """Store the reference under both keys; with `dedupe`, False when this message came before."""
    ref = reference_json(activity)
    who = user_key(activity)
    key = delivery_key(activity)
    with unit_of_work(ctx.engine) as conn:
        if dedupe and key is not None and not chat_state.first_delivery(conn, CHANNEL, key, who or "", ctx.now()):
            return False
        if activity.conversation is not None and activity.conversation.id:
            chat_state.save_ref(conn, CHANNEL, activity.conversation.id, ref, ctx.now())
        # A person's key names their 1:1 chat only: an alert meant for them must not land in a team channel.
        if who and activity.conversation is not None and activity.conversation.conversation_type == "personal":
            chat_state.save_ref(conn, CHANNEL, who, ref, ctx.now())
    return True


def _asker(ctx: Context, activity: Activity) -> ChatUser:
    """Linked staff (store, then config) by Entra object id or Teams id; anyone else is an unlinked account,
    told how to get linked (or, with [staff] unlinked_read, allowed to read and never to act)."""
    who = activity.from_property
    ids = [i for i in (who.aad_object_id, who.id) if i] if who is not None else []
    with ctx.engine.connect() as conn:
        for account in ids:
            found = staff_user(conn, ctx.settings, "teams_user", account)
            if found is not None:
                return found
    return ChatUser(staff_id=f"{CHANNEL}:{ids[0] if ids else 'unknown'}", roles=frozenset(), linked=False)


def _button(value: object) -> tuple[str, str] | None:
    """(action id, value) of a card button's data, or None when it is not one of ours."""
    if not isinstance(value, dict) or value.get("action") not in ACTIONS:
        return None
    return str(value["action"]), str(value.get("value") or "")


def _answer_message(ctx: Context, activity: Activity) -> ChatReply | None:
    user = _asker(ctx, activity)
    pressed = _button(activity.value)
    if pressed is not None:  # Action.Submit from a host without Universal Actions
        return act(ctx, user, pressed[0], pressed[1], CHANNEL)
    text = plain_text(activity.text)
    if not text:
        return None
    return reply(ctx, user, text, CHANNEL)


def _answer_button(ctx: Context, activity: Activity, data: dict[str, Any]) -> ChatReply | None:
    _remember(ctx, activity, dedupe=False)  # Teams repeats an invoke only when we were too slow: answer again
    pressed = _button(data)
    if pressed is None:
        return None
    return act(ctx, _asker(ctx, activity), pressed[0], pressed[1], CHANNEL)


def build_agent(ctx: Context, connection_manager: Connections) -> AgentApplication[TurnState]:
    # No typing timer: it would post typing activities beside every answer.
    app = AgentApplication[TurnState](
        ApplicationOptions(storage=MemoryStorage(), start_typing_timer=False, remove_recipient_mention=True),
        connection_manager=connection_manager,
    )

    @app.activity(ActivityTypes.message)
    async def on_message(context: TurnContext, state: TurnState) -> None:
        if not await asyncio.to_thread(_remember, ctx, context.activity, dedupe=True):
            return  # a redelivery: it was answered the first time
        try:
            if approvals.is_draft_press(context.activity.value):  # Action.Submit from a host without Universal Actions
                await approvals.on_submit(ctx, context, _asker)
                return
            if suggestions.is_suggestion_press(context.activity.value):  # a reorder suggestion's Approve / Reject
                await suggestions.on_submit(ctx, context, _asker)
                return
            if tasks.is_task_press(context.activity.value):  # a task's Take / Done / Reassign
                await tasks.on_submit(ctx, context, _asker)
                return
            answer = await asyncio.to_thread(_answer_message, ctx, context.activity)
            if answer is not None:
                out = MessageFactory.text(answer.reply)
                out.text_format = TextFormatTypes.markdown
                await context.send_activity(out)
        except Exception:
            await asyncio.to_thread(forget, ctx, context.activity)
            raise

    @app.conversation_update("membersAdded")
    async def on_members_added(context: TurnContext, state: TurnState) -> None:
        await asyncio.to_thread(_remember, ctx, context.activity, dedupe=False)

    @app.activity(ActivityTypes.installation_update)
    async def on_installed(context: TurnContext, state: TurnState) -> None:
        await asyncio.to_thread(_remember, ctx, context.activity, dedupe=False)

    @app.adaptive_card.action_execute(ANY_VERB)
    async def on_button(context: TurnContext, state: TurnState, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        if approvals.is_draft_press(data):
            await asyncio.to_thread(_remember, ctx, context.activity, dedupe=False)
            return await approvals.on_execute(ctx, context, data, _asker)
        if suggestions.is_suggestion_press(data):
            await asyncio.to_thread(_remember, ctx, context.activity, dedupe=False)
            return await suggestions.on_execute(ctx, context, data, _asker)
        if tasks.is_task_press(data):
            await asyncio.to_thread(_remember, ctx, context.activity, dedupe=False)
            return await tasks.on_execute(ctx, context, data, _asker)
        answer = await asyncio.to_thread(_answer_button, ctx, context.activity, data)
        if answer is None:
            return AdaptiveCardInvokeResponse(
                status_code=HTTPStatus.BAD_REQUEST, type="application/vnd.microsoft.error",
                value={"code": "BadRequest", "message": "data.action: not a known action"})
        return AdaptiveCardInvokeResponse(status_code=HTTPStatus.OK, type=CONTENT_TYPE, value=answer_card(answer.reply))

    return app
