"""Microsoft Teams sender: proactive messages through the Agents SDK, to a channel or a person.

The recipient is a conversation id (StaffContact.teams_conversation) or a user id; either way the
conversation reference stored when Teams first talked to us (bot/teams) says where to post. A card
payload goes as an Adaptive Card 1.5 with the plain body as its text fallback; an empty payload (a
chat reply row) as plain text. The dispatcher paces sends (7/s per conversation); a 429 is retried
after its Retry-After, no answer within TIMEOUT_S is a retryable "timeout", a bot removed from the team (403)
or a conversation gone (404) is permanent.
In production a reference whose serviceUrl is not one of Microsoft's service hosts is refused before
any token is asked for: the bot token must reach the Bot Connector only.

A sent message's provider id is "<conversation id>|<activity id>" (activity ids are unique only within a
conversation): all it takes to edit the message later. A draft's approval card is drawn with its Edit box
holding the draft's current text; a row of kind "approval_update" (services/approvals.py, a decision made
anywhere) edits the card named by payload["replace"] in place (PUT .../activities/{id}) and posts nothing new.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from microsoft_agents.activity import Activity, ActivityTypes, Attachment, ConversationReference, TextFormatTypes
from microsoft_agents.hosting.core import TurnContext
from microsoft_agents.hosting.fastapi import CloudAdapter
from pydantic import ValidationError
from sqlalchemy import Engine, select

from backorder.config import DraftSettings, TeamsSettings
from notifiers.adaptive_cards import (
    APPROVAL_KINDS,
    CONTENT_TYPE,
    adaptive_card,
    approval_card,
    decided_card,
    escape_markdown,
)
from notifiers.senders.base import Outgoing, PermanentError, RetryableError, Sent, parse_retry_after, wait_turn
from notifiers.teams_auth import connections, outbound_identity, reraise, service_hosts
from store import chat_state as store
from store import tables as t

CHANNEL = "teams"
GONE = (403, 404)  # bot uninstalled / blocked, or the conversation no longer exists
UPDATE_KIND = "approval_update"
SEPARATOR = "|"  # in "<conversation id>|<activity id>": Teams puts none in either
# The SDK's connector session has aiohttp's default timeout (5 minutes): a Bot Connector that does not answer would
# hold the send, and the dispatcher's whole batch, past the outbox lease (and another worker would send it again).
TIMEOUT_S = 10.0


def provider_id(conversation_id: str, activity_id: str) -> str:
    """The id a sent message is recorded under: enough to edit it later."""
    return f"{conversation_id}{SEPARATOR}{activity_id}"


def split_provider_id(value: str) -> tuple[str | None, str]:
    """(conversation id, activity id) of a provider id; (None, id) for a bare activity id (an older row)."""
    conversation, sep, activity_id = value.rpartition(SEPARATOR)
    return (conversation, activity_id) if sep and conversation else (None, value)


def card_activity(body: str, content: dict[str, Any]) -> Activity:
    """A message holding one Adaptive Card, with the plain body as its (escaped) text fallback and summary."""
    activity = Activity(type=ActivityTypes.message, text=escape_markdown(body), text_format=TextFormatTypes.markdown)
    activity.attachments = [Attachment(content_type=CONTENT_TYPE, content=content)]
    activity.summary = body[:200]  # what Teams shows in the activity feed and notifications
    return activity


def message_activity(msg: Outgoing, *, draft_text: str | None = None,
                     max_chars: int = DraftSettings().max_chars) -> Activity:
    """The activity to post: the card with the body as fallback text, or the body alone.

    A card's body is the notice's plain text (Teams reads it as Markdown: escaped); without a card the
    body is a chat answer already rendered as Markdown. An approval card's Edit box holds `draft_text`;
    an approval update is drawn as the decided card."""
    if not msg.payload:
        return Activity(type=ActivityTypes.message, text=msg.body, text_format=TextFormatTypes.markdown)
    try:
        if msg.kind == UPDATE_KIND:
            content = decided_card(msg.payload)
        elif msg.payload.get("kind") in APPROVAL_KINDS and draft_text is not None:
            content = approval_card(msg.payload, draft_text=draft_text, max_chars=max_chars)
        else:
            content = adaptive_card(msg.payload)
            if str(msg.payload.get("image_url") or "").startswith("https://"):
                # A chart Teams fetches itself (the weekly report's, by a signed URL): https only, Teams' rule.
                content["body"].append({"type": "Image", "url": msg.payload["image_url"], "size": "Stretch",
                                        "altText": str(msg.payload.get("title") or "")})
    except ValueError as exc:
        raise PermanentError("bad_card", str(exc)) from None
    return card_activity(msg.body, content)


class TeamsSender:
    channel = CHANNEL

    waits_turn = True  # base.wait_turn() right before each request: the dispatcher paces it there

    def __init__(self, settings: TeamsSettings, engine: Engine | None, *,
                 max_chars: int = DraftSettings().max_chars) -> None:
        if engine is None:
            raise ValueError("the teams sender needs the store's engine (conversation references)")
        self.settings = settings
        self.engine = engine
        self.max_chars = max_chars  # [drafts] max_chars: the longest edit the approval card's box takes
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

    def _draft_text(self, payload: dict[str, Any]) -> str | None:
        """The current text of the draft an approval card is about (None: not one, or no such draft)."""
        if payload.get("kind") not in APPROVAL_KINDS or not str(payload.get("draft_id") or "").isdigit():
            return None
        with self.engine.connect() as conn:
            return conn.execute(select(t.drafts.c.text).where(t.drafts.c.id == int(payload["draft_id"]))
                                ).scalar_one_or_none()

    async def send(self, msg: Outgoing) -> Sent:
        if msg.kind == UPDATE_KIND:
            return await self._update(msg)
        reference = await asyncio.to_thread(self._reference, msg.recipient)
        draft_text = await asyncio.to_thread(self._draft_text, msg.payload) if msg.payload else None
        activity = message_activity(msg, draft_text=draft_text, max_chars=self.max_chars)
        sent: list[str] = []

        async def post(context: TurnContext) -> None:
            response = await context.send_activity(activity)
            sent.append(response.id if response is not None and response.id else "")

        continuation = reference.get_continuation_activity()
        # Without an id the SDK posts a new message (POST .../activities), not a reply to the continuation's
        # made-up id: in a channel an alert starts its own thread.
        continuation.id = None
        await self._run(reference, continuation, post)
        if not sent or not sent[0]:
            return Sent(provider_id=None)
        conversation_id = continuation.conversation.id if continuation.conversation is not None else None
        return Sent(provider_id=provider_id(conversation_id, sent[0]) if conversation_id else sent[0])

    async def _update(self, msg: Outgoing) -> Sent:
        """Edit a card posted before (payload["replace"]: its provider id) into this row's card, in place."""
        replace = str(msg.payload.get("replace") or "")
        if not replace:
            raise PermanentError("bad_update", "payload.replace: the provider id of the card to update is missing")
        reference = await asyncio.to_thread(self._reference, msg.recipient)
        conversation_id, activity_id = split_provider_id(replace)
        card = {k: v for k, v in msg.payload.items() if k not in ("replace", "draft_id")}
        activity = message_activity(Outgoing(id=msg.id, channel=msg.channel, recipient=msg.recipient,
                                             kind=msg.kind, body=msg.body, idempotency_key=msg.idempotency_key,
                                             payload=card, locale=msg.locale, attempt=msg.attempt))
        activity.id = activity_id

        async def put(context: TurnContext) -> None:
            await context.update_activity(activity)

        continuation = reference.get_continuation_activity()
        continuation.id = None  # no replyToId on the edit
        if conversation_id is not None and continuation.conversation is not None:
            continuation.conversation = continuation.conversation.model_copy(update={"id": conversation_id})
        await self._run(reference, continuation, put)
        return Sent(provider_id=None)  # the card keeps its id: the row that posted it holds it

    async def _run(self, reference: ConversationReference, continuation: Activity,
                   callback: Callable[[TurnContext], Awaitable[None]]) -> None:
        """One proactive turn; the Bot Connector's refusals classified for the dispatcher."""
        await wait_turn()
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await self.adapter.continue_conversation_with_claims(self.identity, continuation, callback)
        except TimeoutError as exc:  # before OSError and ClientError: aiohttp's own timeouts are both
            raise RetryableError("timeout", f"{reference.service_url}: {exc or f'no answer in {TIMEOUT_S} s'}",
                                 ) from None
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
        except PermissionError as exc:  # no bot token: a wrong secret stays wrong until someone fixes it
            raise PermanentError("auth", str(exc)) from None  # (before OSError, which PermissionError is)
        except (aiohttp.ClientError, OSError) as exc:
            raise RetryableError("connection", f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        return None
