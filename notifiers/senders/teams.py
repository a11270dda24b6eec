"""Microsoft Teams sender: proactive messages through the Agents SDK, to a channel or a person.

The recipient is a conversation id (StaffContact.teams_conversation) or a user id; either way the
conversation reference stored when Teams first talked to us (bot/teams) says where to post. A card
payload goes as an Adaptive Card 1.5 with the plain body as its text fallback; an empty payload (a
chat reply row) as plain text. The dispatcher paces sends (7/s per conversation); a 429 is retried
after its Retry-After, a bot removed from the team (403) or a conversation gone (404) is permanent.
In production a reference whose serviceUrl is not one of Microsoft's service hosts is refused before
any token is asked for: the bot token must reach the Bot Connector only.
"""

from __future__ import annotations

import asyncio

import aiohttp
from microsoft_agents.activity import Activity, ActivityTypes, Attachment, ConversationReference, TextFormatTypes
from microsoft_agents.hosting.core import TurnContext
from microsoft_agents.hosting.fastapi import CloudAdapter
from pydantic import ValidationError
from sqlalchemy import Engine

from backorder.config import TeamsSettings
from notifiers.adaptive_cards import CONTENT_TYPE, adaptive_card, escape_markdown
from notifiers.senders.base import Outgoing, PermanentError, RetryableError, Sent, parse_retry_after
from notifiers.teams_auth import connections, outbound_identity, reraise, service_hosts
from store import chat_state as store

CHANNEL = "teams"
GONE = (403, 404)  # bot uninstalled / blocked, or the conversation no longer exists


def message_activity(msg: Outgoing) -> Activity:
    """The activity to post: the card with the body as fallback text, or the body alone.

    A card's body is the notice's plain text (Teams reads it as Markdown: escaped); without a card the
    body is a chat answer already rendered as Markdown."""
    text = escape_markdown(msg.body) if msg.payload else msg.body
    activity = Activity(type=ActivityTypes.message, text=text, text_format=TextFormatTypes.markdown)
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
        self.hosts = service_hosts(settings)
        self.adapter = CloudAdapter(connection_manager=connections(settings), host_validator=self.hosts)
        self.adapter.on_turn_error = reraise
        self.identity = outbound_identity(settings)

    def _reference(self, recipient: str) -> ConversationReference:
        with self.engine.connect() as conn:
            raw = store.load_ref(conn, CHANNEL, recipient)
        if raw is None:
            raise PermanentError("no_conversation_reference",
                                 f"{recipient}: Teams never talked to us from there (install the app first)")
        try:
            reference = ConversationReference.model_validate(raw)
        except ValidationError as exc:
            raise PermanentError("bad_conversation_reference", f"{recipient}: {exc.errors()[0]['msg']}") from None
        if not reference.service_url or not self.hosts.is_allowed(reference.service_url):
            raise PermanentError("bad_service_url",
                                 f"{recipient}: serviceUrl {reference.service_url!r} is not a Bot Connector host")
        return reference

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
                wait = parse_retry_after(exc.headers.get("Retry-After") if exc.headers is not None else None)
                raise RetryableError("rate_limited", detail, retry_after=wait) from None
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
