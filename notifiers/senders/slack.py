"""Slack: alerts as Block Kit messages through chat.postMessage, follow-ups on a topic as thread replies.

The recipient is a channel id (C…, G…) or a user id (U…, W…): a user's DM is opened first with
conversations.open. The dispatcher keeps Slack's 1 message/s per channel and retries; this sender only
classifies a failure and passes Retry-After on, so the SDK's own retry handlers are turned off.

An `approval_update` row (services/approvals.py: a draft was decided, wherever) posts nothing new: it
redraws the approval card already posted, named by payload["replace"] = "CHANNEL:TS" (that card's
provider id), in place with chat.update. A row whose payload has `files` (the weekly report's chart:
filename, title, content_b64) shares them in the channel after its message, with files_upload_v2.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine

from backorder.config import SlackSettings
from notifiers import slack_blocks
from notifiers.senders.base import Outgoing, PermanentError, RetryableError, Sent, parse_retry_after, wait_turn
from store.chat_state import remember_thread, thread_of
from store.db import unit_of_work

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
# Errors that will not change on a retry of the same message: the address or the token is wrong.
PERMANENT = frozenset({"channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "account_inactive",
                       "user_not_found", "token_revoked", "not_authed", "missing_scope", "cannot_dm_bot",
                       "user_disabled", "invalid_blocks", "msg_too_long", "no_text", "restricted_action",
                       "message_not_found", "cant_update_message", "edit_window_closed"})
TRANSIENT = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
TIMEOUT_S = 10
UPDATE_KIND = "approval_update"  # redraws the card named by payload["replace"] instead of posting


def utcnow() -> datetime:
    return datetime.now(UTC)


class SlackSender:
    channel = "slack"

    waits_turn = True  # base.wait_turn() right before each request: the dispatcher paces it there

    def __init__(self, settings: SlackSettings, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        if settings.bot_token is None:
            raise ValueError("slack.bot_token is needed to send to Slack")
        self._token = settings.bot_token.get_secret_value()
        self._base_url = settings.api_base_url
        self._engine = engine
        self.clock = clock
        self._client: AsyncWebClient | None = None
        self._session: aiohttp.ClientSession | None = None

    def _web(self) -> AsyncWebClient:
        # The session is made on first use: aiohttp wants a running event loop for it.
        if self._client is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
            self._client = AsyncWebClient(token=self._token, base_url=self._base_url, session=self._session,
                                          timeout=TIMEOUT_S, retry_handlers=[])
        return self._client

    async def send(self, msg: Outgoing) -> Sent:
        recipient = msg.recipient.strip()
        if not (CHANNEL_ID.match(recipient) or USER_ID.match(recipient)):
            raise PermanentError("bad_recipient", f"{recipient!r} is not a Slack channel or user id")
        card: dict[str, Any] = msg.payload or {}
        if msg.kind == UPDATE_KIND:
            return await self._update(card, msg.body)
        topic = card.get("topic")
        thread = await asyncio.to_thread(self._thread_of, recipient, topic) if topic else None
        channel = await self._call("conversations_open", users=recipient) if USER_ID.match(recipient) else None
        channel_id = channel["channel"]["id"] if channel is not None else recipient
        args = slack_blocks.message(card, msg.body)
        if thread is not None:
            args["thread_ts"] = thread
        posted = await self._call("chat_postMessage", channel=channel_id, unfurl_links=False, unfurl_media=False,
                                  **args)
        ts = str(posted["ts"])
        if topic and thread is None:
            await asyncio.to_thread(self._remember, recipient, topic, ts)
        if card.get("files"):
            await self._upload(channel_id, card["files"])
        return Sent(provider_id=f"{posted.get('channel') or channel_id}:{ts}")

    async def _upload(self, channel_id: str, files: list[dict[str, Any]]) -> None:
        """Share the row's files (a report's chart) in the channel after the message, through Slack's upload flow
        (files.getUploadURLExternal, a POST of the bytes, files.completeUploadExternal: files_upload_v2)."""
        try:
            uploads = [{"content": base64.b64decode(f["content_b64"]), "filename": str(f["filename"]),
                        "title": str(f.get("title") or f["filename"])} for f in files]
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError("bad_file", f"payload.files: {exc}") from None
        try:
            await self._call("files_upload_v2", channel=channel_id, file_uploads=uploads)
        except SlackRequestError as exc:  # the upload URL refused the bytes
            raise RetryableError("upload_failed", str(exc)) from None

    async def _update(self, card: dict[str, Any], body: str) -> Sent:
        channel, _, ts = str(card.get("replace") or "").partition(":")
        if not CHANNEL_ID.match(channel) or not ts:
            raise PermanentError("bad_replace", f"{card.get('replace')!r} names no Slack message (CHANNEL:TS)")
        # Without `blocks` chat.update keeps the old ones (the buttons): always send them, if need be empty.
        await self._call("chat_update", channel=channel, ts=ts, **{"blocks": [], **slack_blocks.message(card, body)})
        return Sent(provider_id=f"{channel}:{ts}")

    async def _call(self, method: str, **kwargs: Any) -> Any:
        await wait_turn()
        try:
            return await getattr(self._web(), method)(**kwargs)
        except SlackApiError as exc:
            raise classify(exc) from None
        except TimeoutError as exc:  # before ClientError: aiohttp's own timeouts are both; "timeout" as on webhooks
            raise RetryableError("timeout", f"{type(exc).__name__}: no answer within {TIMEOUT_S} s") from None
        except aiohttp.ClientError as exc:
            raise RetryableError("connection", f"{type(exc).__name__}: {exc}") from None

    def _thread_of(self, destination: str, topic: str) -> str | None:
        with self._engine.connect() as conn:
            return thread_of(conn, "slack", destination, topic)

    def _remember(self, destination: str, topic: str, ts: str) -> None:
        with unit_of_work(self._engine) as conn:
            remember_thread(conn, "slack", destination, topic, ts, self.clock())

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._client = None


def classify(exc: SlackApiError) -> RetryableError | PermanentError:
    """A Web API failure as the dispatcher needs it: retry later (how much later), or never on Slack."""
    response = exc.response
    status = response.status_code
    error = str(response.get("error") or f"http_{status}") if isinstance(response.data, dict) else f"http_{status}"
    if status == 429 or error == "ratelimited":
        raw = response.headers.get("Retry-After") if response.headers else None
        return RetryableError("rate_limited", error, retry_after=parse_retry_after(raw))
    if status >= 500 or error in TRANSIENT:
        return RetryableError("server_error", error)
    return PermanentError(error, f"HTTP {status}")
