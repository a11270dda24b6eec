"""SMS and WhatsApp through Twilio's official client (twilio 9, its async path).

WhatsApp allows free-form text only within 24 hours of the customer's last message to us; outside that
window only an approved template goes, chosen per kind by [twilio] whatsapp_templates (a ContentSid).
Such a template gets two variables: {"1": the card's title, "2": the notice's text on one line}.
Inside the window a card with actions goes as quick-reply buttons: a twilio/quick-reply Content template
(body "{{1}}", the buttons' titles, each button's id a variable carrying "<action id>:<value>"), made once per
set of buttons through the Content API (a later process finds it by its friendly name) and sent with
content_sid + content_variables.

Delivery is reported later by status callbacks (bot/twilio, services/delivery.py), so a send only
returns the MessageSid. Rate limits are the dispatcher's (per number and Twilio's per-sender MPS).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from sqlalchemy import Engine, select
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.rest.content.v1.content import ContentList

from backorder.config import TwilioSettings
from notifiers.senders.base import (
    Outgoing,
    PermanentError,
    RetryableError,
    SendError,
    Sent,
    parse_retry_after,
    wait_turn,
)
from notifiers.twilio_errors import classify
from store import chat_state as store_channels
from store import outbox
from store import tables as t
from store.db import unit_of_work

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)
MAX_BUTTONS = 3
MAX_TITLE = 20
MAX_QUICK_REPLY_BODY = 1024
TIMEOUT_S = 10.0
# Answers to a message the customer just sent: inside WhatsApp's window by definition.
SESSION_KINDS = frozenset({"chat_reply", "keyword_reply"})
# The answer to STOP, START or HELP goes even to a number that opted out: it is what the keyword asked for.
UNSUPPRESSED_KINDS = frozenset({"keyword_reply"})

# Quick-reply Content templates made so far, per process: (account, API base URL, buttons' hash) -> ContentSid.
# A template outlives the sender that made it (Twilio keeps it), so every sender of this process reuses it.
_QUICK_REPLIES: dict[tuple[str, str, str], str] = {}

# Retry-After of the last answer on this task: the SDK's exception drops the response headers.
_retry_after: ContextVar[float | None] = ContextVar("twilio_retry_after", default=None)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _is_twilio(host: str) -> bool:
    return host == "twilio.com" or host.endswith(".twilio.com")


def routed(base_url: str, url: str) -> str:
    """Where a request of the SDK for `url` goes when twilio.api_base_url is `base_url`.

    A base on Twilio itself (the default https://api.twilio.com) changes nothing: each API has its own host
    (api., content., ...), and sending them all to one would break every API but one. Any other base (a
    local fake, a proxy) receives every *.twilio.com request, path kept: region and edge settings only
    rename twilio.com hosts, so nothing else can point the SDK there.
    """
    base = urlsplit(base_url.rstrip("/"))
    parts = urlsplit(url)
    if _is_twilio(base.hostname or "") or not _is_twilio(parts.hostname or ""):
        return url
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, parts.fragment))


class RoutedHttpClient(AsyncTwilioHttpClient):
    """The SDK's requests through aiohttp, to the hosts `routed` says.

    It also sends JSON bodies as JSON (the stock async client form-encodes the Content API's JSON).
    """

    def __init__(self, base_url: str, timeout: float = TIMEOUT_S) -> None:
        super().__init__(pool_connections=False, timeout=timeout)
        self.base_url = base_url
        self._session: aiohttp.ClientSession | None = None  # made on first use, inside the running loop

    def route(self, url: str) -> str:
        return routed(self.base_url, url)

    async def request(self, method: str, url: str, params: dict[str, object] | None = None,
                      data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None, timeout: float | None = None,
                      allow_redirects: bool = False) -> Response:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        headers = dict(headers or {})
        body: dict[str, Any] = {"json": data} if headers.get("Content-Type") == "application/json" else {"data": data}
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        async with self._session.request(
            method.upper(), self.route(url), params=params, headers=headers, allow_redirects=allow_redirects,
            timeout=aiohttp.ClientTimeout(total=timeout or self.timeout or TIMEOUT_S), **body,
        ) as resp:
            text = await resp.text()
            _retry_after.set(parse_retry_after(resp.headers.get("Retry-After")))
            return Response(resp.status, text, resp.headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class TwilioSender:
    waits_turn = True  # base.wait_turn() right before each request: the dispatcher paces it there

    def __init__(self, channel: str, settings: TwilioSettings, engine: Engine, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if channel not in ("sms", "whatsapp"):
            raise ValueError(f"channel must be sms or whatsapp, not {channel!r}")
        if settings.account_sid is None or settings.auth_token is None:
            raise ValueError("twilio.account_sid and twilio.auth_token are needed to send")
        self.channel = channel
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.http = RoutedHttpClient(settings.api_base_url)
        self.client = Client(settings.account_sid, settings.auth_token.get_secret_value(), http_client=self.http)
        # The client imports each API's modules on first use (~0.15 s, blocking the event loop): done here, not
        # inside the first send, where it would stall every send in flight and bunch up the paced ones.
        self.messages = self.client.messages
        self.contents = self.client.content.v1.contents
        # One creation per set of buttons even when a whole batch (concurrency 64) asks for it at once.
        self._creating: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._listing = asyncio.Lock()
        self._known_templates: dict[str, str] | None = None

    async def send(self, msg: Outgoing) -> Sent:
        suppressed, last_in = await asyncio.to_thread(self._read_store, msg.recipient)
        if suppressed and msg.kind not in UNSUPPRESSED_KINDS:
            raise PermanentError("opted_out", f"{msg.recipient} opted out of {self.channel}")
        s = self.settings
        fields: dict[str, Any] = {"status_callback": f"{s.public_base_url}/twilio/status"}
        if self.channel == "sms":
            fields.update(to=msg.recipient, body=msg.body)
            if s.sms_from:
                fields["from_"] = s.sms_from
            else:
                fields["messaging_service_sid"] = s.messaging_service_sid
        else:
            fields.update(to=f"whatsapp:{msg.recipient.removeprefix('whatsapp:')}", from_=f"whatsapp:{s.whatsapp_from}")
            inside = msg.kind in SESSION_KINDS or (last_in is not None and self.clock() - last_in < WINDOW)
            fields.update(await self._session_message(msg) if inside else self._template_message(msg))
        await wait_turn()
        _retry_after.set(None)
        try:
            created = await self.messages.create_async(**fields)
        except (TwilioException, aiohttp.ClientError, TimeoutError) as exc:
            raise await self._failure(msg, exc) from exc
        await asyncio.to_thread(self._note, msg.id, created.sid)
        return Sent(provider_id=created.sid, delivered=False)

    def _note(self, outbox_id: int, sid: str) -> None:
        with unit_of_work(self.engine) as conn:
            outbox.note_provider_id(conn, outbox_id, sid)

    def _read_store(self, number: str) -> tuple[bool, datetime | None]:
        with self.engine.connect() as conn:
            suppressed = store_channels.is_suppressed(conn, self.channel, number)
            last_in = store_channels.last_inbound(conn, "whatsapp", number) if self.channel == "whatsapp" else None
        return suppressed, last_in

    async def _session_message(self, msg: Outgoing) -> dict[str, Any]:
        actions = (msg.payload or {}).get("actions", [])[:MAX_BUTTONS]
        if not actions:
            return {"body": msg.body}
        # The template holds the titles; the text and each button's payload ("<action>:<value>") are its
        # variables, so one template serves every order and task with the same buttons.
        sid = await self._quick_reply([(str(a["id"]), str(a["label"])[:MAX_TITLE]) for a in actions], msg.locale)
        variables = {"1": msg.body[:MAX_QUICK_REPLY_BODY]}
        variables.update({str(i): f"{a['id']}:{a.get('value', '')}"[:200] for i, a in enumerate(actions, start=2)})
        return {"content_sid": sid, "content_variables": json.dumps(variables, ensure_ascii=False)}

    async def _quick_reply(self, buttons: list[tuple[str, str]], locale: str) -> str:
        """The Content template for these buttons (action id, title): the account's own if an earlier process
        made it (found by its friendly name, which the buttons decide), else made now, once per set of buttons."""
        digest = hashlib.sha256(json.dumps([locale, buttons]).encode()).hexdigest()[:32]
        key = (self.settings.account_sid or "", self.settings.api_base_url, digest)
        if key in _QUICK_REPLIES:
            return _QUICK_REPLIES[key]
        async with self._creating.setdefault(key, asyncio.Lock()):
            if key not in _QUICK_REPLIES:  # the first waiter found or made it
                name = f"backorder_quick_reply_{digest[:16]}"
                existing = (await self._templates()).get(name)
                _QUICK_REPLIES[key] = existing or await self._create_quick_reply(buttons, locale, name)
        return _QUICK_REPLIES[key]

    async def _templates(self) -> dict[str, str]:
        """The account's Content templates, friendly name -> ContentSid: listed once per sender, not per send."""
        async with self._listing:
            if self._known_templates is None:
                _retry_after.set(None)
                found: dict[str, str] = {}
                try:
                    async for content in await self.contents.stream_async():
                        if content.friendly_name and content.sid:
                            found.setdefault(str(content.friendly_name), str(content.sid))
                except (TwilioException, aiohttp.ClientError, TimeoutError) as exc:
                    raise await self._failure(None, exc) from exc
                self._known_templates = found
        return self._known_templates

    async def _create_quick_reply(self, buttons: list[tuple[str, str]], locale: str, name: str) -> str:
        request = ContentList.ContentCreateRequest({
            "friendly_name": name, "language": locale[:2] or "en",
            # Sample values of the variables: the text, then each button's "<action>:<value>" payload.
            "variables": {"1": "text", **{str(i): f"{ident}:value" for i, (ident, _) in enumerate(buttons, start=2)}},
            "types": {"twilio/quick-reply": {"body": "{{1}}", "actions": [
                {"type": "QUICK_REPLY", "title": title, "id": f"{{{{{i}}}}}"}
                for i, (_, title) in enumerate(buttons, start=2)]}},
        })
        _retry_after.set(None)
        try:
            content = await self.contents.create_async(request)
        except (TwilioException, aiohttp.ClientError, TimeoutError) as exc:
            raise await self._failure(None, exc) from exc
        if not content.sid:
            raise RetryableError("content_api", "the Content API returned no sid")
        return str(content.sid)

    def _template_message(self, msg: Outgoing) -> dict[str, Any]:
        sid = self.settings.whatsapp_templates.get(msg.kind)
        if sid is None:
            raise PermanentError("no_whatsapp_template",
                                 f"outside the 24-hour window and no twilio.whatsapp_templates.{msg.kind}")
        card = msg.payload or {}
        title = str(card.get("title") or (msg.body.splitlines() or [""])[0])
        text = " ".join(str(card.get("text") or msg.body).split())
        return {"content_sid": sid, "content_variables": json.dumps({"1": title, "2": text}, ensure_ascii=False)}

    async def _failure(self, msg: Outgoing | None, exc: Exception) -> SendError:
        """The SendError a failure of the client stands for (an API error by its code, else the connection)."""
        if isinstance(exc, TimeoutError):  # "timeout" as on webhooks: the message may have been created
            return RetryableError("timeout", f"{type(exc).__name__}: no answer within {self.http.timeout} s")
        if not isinstance(exc, TwilioRestException | TwilioServiceException):
            return RetryableError("connection", f"{type(exc).__name__}: {exc}")
        code, status = exc.code, exc.status
        detail = exc.msg if isinstance(exc, TwilioRestException) else f"{exc.title}: {exc.detail}"
        verdict = classify(code, status)
        text = f"HTTP {status}, code {code}: {detail}"[:500]
        if verdict.action == "opted_out" and msg is not None:
            await asyncio.to_thread(self._opted_out, msg, code)
        if verdict.retryable:
            return RetryableError(verdict.reason, text, retry_after=_retry_after.get())
        return PermanentError(verdict.reason, text)

    def _opted_out(self, msg: Outgoing, code: int | None) -> None:
        """Twilio refused: the number said STOP to the carrier. Recorded as our own STOP would be."""
        o = t.outbox
        with unit_of_work(self.engine) as conn:
            customer_id = conn.execute(select(o.c.customer_id).where(o.c.id == msg.id)).scalar_one_or_none()
            store_channels.set_opt_out(conn, self.channel, msg.recipient, customer_id, True, self.clock(),
                                       f"twilio:{code}")

    async def aclose(self) -> None:
        await self.http.close()
