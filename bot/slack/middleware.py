"""Global middleware: hand listeners the door, drop Slack's retries of an event, and say who is asking.

Slack retries an event it thinks went unanswered (X-Slack-Retry-Num) with the same event_id; the first
delivery is recorded in the store, so a retry — even one reaching another process — is acked, not answered.
A delivery whose answer then fails (the listener raised: chat.postMessage refused, the store down) is
forgotten again by the error handler, so Slack's retry of it gets the answer the first one did not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.slack.door import Door

# Bolt passes the rest of the chain by the parameter name `next`.
Next = Callable[[], Awaitable[BoltResponse | None]]
SEEN = "first_delivery"  # context key: the event id this request recorded as delivered


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
        context[SEEN] = str(event_id)
    return await next()


async def identify(context: AsyncBoltContext, next: Next) -> BoltResponse | None:
    if context.user_id:
        door: Door = context["door"]
        context["chat_user"] = await asyncio.to_thread(door.who, context.user_id)
    return await next()


async def unsee_on_failure(error: Exception, context: AsyncBoltContext, logger: logging.Logger) -> None:
    """Bolt's error handler (listeners run after the ack, so their failures land here, not in the response)."""
    logger.error("Slack listener failed: %s: %s", type(error).__name__, error, exc_info=error)
    event_id = context.get(SEEN)
    door = context.get("door")
    if event_id and isinstance(door, Door):
        try:
            await asyncio.to_thread(door.unsee, event_id)
        except Exception:  # the store is down too: Slack's retry is dropped, as before this handler
            logger.exception("could not forget Slack event %s; its retry will not be answered", event_id)


def register(app: AsyncApp, door: Door) -> None:
    app.use(attach(door))
    app.use(drop_retries)
    app.use(identify)
    app.error(unsee_on_failure)
