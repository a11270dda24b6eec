"""Card buttons (action_id "bo:<action>", value from the card) answered as the question they stand for.

The answer goes in the thread of the message the button is on, so the team sees what was done about an
alert next to it; a button on the App Home (no message) is answered in the user's DM with the app.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from notifiers.slack_blocks import ACTION_PREFIX
from services.chat import ACTIONS

ACTION_IDS = re.compile(rf"^{re.escape(ACTION_PREFIX)}({'|'.join(map(re.escape, ACTIONS))})$")


def reply_target(body: dict[str, Any]) -> tuple[str, str | None]:
    """(channel, thread ts) to answer a press in: the card's thread, or the user's DM for the App Home."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    if container.get("type") == "message" and container.get("channel_id") and message.get("ts"):
        return str(container["channel_id"]), str(message.get("thread_ts") or message["ts"])
    return str(body["user"]["id"]), None


async def press_button(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext,
                       client: AsyncWebClient) -> None:
    await ack()
    name = str(action["action_id"]).removeprefix(ACTION_PREFIX)
    reply = await context["door"].press(context["chat_user"], name, str(action.get("value", "")))
    channel, thread_ts = reply_target(body)
    await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=reply, unfurl_links=False)


def register(app: AsyncApp) -> None:
    app.action(ACTION_IDS)(press_button)
