"""The App Home tab: published fresh each time the user opens it (views.publish)."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.home import home_view

EVENT = "app_home_opened"  # manifest bot_events: app_home_opened


async def publish_home(event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient) -> None:
    if event.get("tab", "home") != "home":
        return
    door = context["door"]
    view = await asyncio.to_thread(home_view, door.ctx, context["chat_user"])
    await client.views_publish(user_id=event["user"], view=view)


def register(app: AsyncApp) -> None:
    app.event(EVENT)(publish_home)
