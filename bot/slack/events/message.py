"""A direct message to the bot (the app's Messages tab): answered in the DM, in its thread if it has one."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext, AsyncSay

EVENT = "message"  # manifest bot_events: message.im (DMs only: no channel history is read)


def is_question(event: dict[str, Any]) -> bool:
    """A person's new message in a DM: not an edit, a deletion, a join or another bot's post."""
    return event.get("channel_type") == "im" and not event.get("subtype") and not event.get("bot_id") \
        and bool(str(event.get("text", "")).strip())


async def answer_dm(event: dict[str, Any], context: AsyncBoltContext, say: AsyncSay) -> None:
    if not is_question(event):
        return
    reply = await context["door"].ask(context["chat_user"], str(event["text"]))
    await say(text=reply, thread_ts=event.get("thread_ts"), unfurl_links=False)


def register(app: AsyncApp) -> None:
    app.event(EVENT)(answer_dm)
