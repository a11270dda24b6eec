"""@backorder in a channel: answered in a thread under the message that mentioned us."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext, AsyncSay

EVENT = "app_mention"  # manifest bot_events: app_mention


async def answer_mention(event: dict[str, Any], context: AsyncBoltContext, say: AsyncSay) -> None:
    reply = await context["door"].ask(context["chat_user"], str(event.get("text", "")))
    await say(text=reply, thread_ts=event.get("thread_ts") or event["ts"], unfurl_links=False)


def register(app: AsyncApp) -> None:
    app.event(EVENT)(answer_mention)
