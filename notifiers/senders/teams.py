"""Microsoft Teams sender: proactive messages through the Agents SDK, to a channel or a person.

The recipient is a conversation id (StaffContact.teams_conversation) or a user id; either way the
conversation reference stored when Teams first talked to us (bot/teams) says where to post. A card
payload goes as an Adaptive Card 1.5 with the plain body as its text fallback; an empty payload (a
chat reply row) as plain text. The dispatcher paces sends (7/s per conversation); a 429 is retried
after its Retry-After, a bot removed from the team (403) or a conversation gone (404) is permanent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from microsoft_agents.activity import Activity, ActivityTypes, Attachment, ConversationReference, TextFormatTypes
from microsoft_agents.hosting.core import TurnContext
from microsoft_agents.hosting.fastapi import CloudAdapter
from pydantic import ValidationError
from sqlalchemy import Engine

from backorder.config import TeamsSettings
from notifiers.adaptive_cards import CONTENT_TYPE, adaptive_card
from notifiers.senders.base import Outgoing, PermanentError, RetryableError, Sent
from notifiers.teams_auth import connections, outbound_identity, reraise
from store import chat_state as store

CHANNEL = "teams"
GONE = (403, 404)  # bot uninstalled / blocked, or the conversation no longer exists


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def message_activity(msg: Outgoing) -> Activity:
    """The activity to post: the card with the body as fallback text, or the body alone."""
    activity = Activity(type=ActivityTypes.message, text=msg.body, text_format=TextFormatTypes.markdown)
    if msg.payload:
        try:
            content = adaptive_card(msg.payload)
        except ValueError as exc:
            raise PermanentError("bad_card", str(exc)) from None
        activity.attachments = [Attachment(content_type=CONTENT_TYPE, content=content)]
        activity.summary = msg.body[:200]  # what Teams shows in the activity feed and notifications
    return activity


class TeamsSender:
    channel = CHANNEL

    def __init__(self, settings: TeamsSettings, engine: Engine | None) -> None:
        if engine is None:
            raise ValueError("the teams sender needs the store's engine (conversation references)")
        self.settings = settings
        self.engine = engine
        self.adapter = CloudAdapter(connection_manager=connections(settings))
        self.adapter.on_turn_error = reraise
        self.identity = outbound_identity(settings)

    def _reference(self, recipient: str) -> ConversationReference:
        with self.engine.connect() as conn:
            raw = store.load_ref(conn, CHANNEL, recipient)
        if raw is None:
            raise PermanentError("no_conversation_reference",
                                 f"{recipient}: Teams never talked to us from there (install the app first)")
        try:
            return ConversationReference.model_validate(raw)
        except ValidationError as exc:
            raise PermanentError("bad_conversation_reference", f"{recipient}: {exc.errors()[0]['msg']}") from None

    async def send(self, msg: Outgoing) -> Sent:
        reference = await asyncio.to_thread(self._reference, msg.recipient)
        activity = message_activity(msg)
        sent: list[str] = []

        async def post(context: TurnContext) -> None:
            response = await context.send_activity(activity)
            sent.append(response.id if response is not None and response.id else "")

        continuation = reference.get_continuation_activity()
        # Without an id the SDK posts a new message (POST .../activities), not a reply to the continuation's
        # made-up id: in a channel an alert starts its own thread.
        continuation.id = None
        try:
            await self.adapter.continue_conversation_with_claims(self.identity, continuation, post)
        except aiohttp.ClientResponseError as exc:
            detail = f"HTTP {exc.status} from {reference.service_url}"
            if exc.status == 429:
                raise RetryableError("rate_limited", detail, retry_after=_retry_after(exc.headers)) from None
            if exc.status in GONE:
                raise PermanentError("conversation_gone" if exc.status == 404 else "bot_removed", detail) from None
            if exc.status >= 500 or exc.status == 408:
                raise RetryableError(f"http_{exc.status}", detail) from None
            raise PermanentError(f"http_{exc.status}", detail) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableError("connection", f"{type(exc).__name__}: {exc}") from None
        except PermissionError as exc:  # no bot token: a wrong secret stays wrong until someone fixes it
            raise PermanentError("auth", str(exc)) from None
        return Sent(provider_id=sent[0] if sent and sent[0] else None)

    async def aclose(self) -> None:
        return None
