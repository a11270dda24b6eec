"""Global middleware: hand listeners the door, drop Slack's retries of an event, and say who is asking.

Slack retries an event it thinks went unanswered (X-Slack-Retry-Num) with the same event_id; the first
delivery is recorded in the store, so a retry — even one reaching another process — is acked, not answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.slack.door import Door

# Bolt passes the rest of the chain by the parameter name `next`.
Next = Callable[[], Awaitable[BoltResponse | None]]


def attach(door: Door) -> Callable[..., Awaitable[BoltResponse | None]]:
    async def with_door(context: AsyncBoltContext, next: Next) -> BoltResponse | None:
        context["door"] = door
        return await next()

    return with_door


async def drop_retries(body: dict[str, Any], context: AsyncBoltContext, next: Next) -> BoltResponse | None:
    event_id = body.get("event_id")
    if body.get("type") == "event_callback" and event_id:
        door: Door = context["door"]
        user = str((body.get("event") or {}).get("user") or context.user_id or "")
        if not await asyncio.to_thread(door.first_time, str(event_id), user):
            return BoltResponse(status=200, body="")
    return await next()


async def identify(context: AsyncBoltContext, next: Next) -> BoltResponse | None:
    if context.user_id:
        door: Door = context["door"]
        context["chat_user"] = await asyncio.to_thread(door.who, context.user_id)
    return await next()


def register(app: AsyncApp, door: Door) -> None:
    app.use(attach(door))
    app.use(drop_retries)
    app.use(identify)
