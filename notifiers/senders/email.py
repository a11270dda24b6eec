"""E-mail over SMTP (aiosmtplib), with a small pool of reused connections.

How failures are classified (the reason strings feed KPIs, keep them stable):

- recipient refused with 550/551/553/501 -> PermanentError("invalid_address")
- any other 5xx (sender refused, data refused, policy)  -> PermanentError("rejected")
- 535/534/530 and other 5xx on AUTH (wrong login)       -> PermanentError("auth_failed")
- any 4xx reply (greylisting, mailbox busy, 421 closing) -> RetryableError("smtp_4xx")
- timeouts                                               -> RetryableError("timeout")
- refused, reset or dropped connections, TLS handshake  -> RetryableError("connection")
- server certificate fails verification                 -> PermanentError("tls_failed")
- server lacks STARTTLS or an AUTH method we need         -> PermanentError("smtp_unsupported")
- email.host unset                                       -> PermanentError("channel_not_configured")

A wrong password and an untrusted certificate are permanent on purpose: they are the operator's
configuration, retrying the same message cannot fix them, and a permanent error lets the engine
fall back to another channel instead of holding the message for hours.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

import aiosmtplib

from backorder.config import EmailSettings
from notifiers.senders.base import Outgoing, PermanentError, RetryableError, SendError, Sent

FALLBACK_SUBJECT = "Backorder update"
IDEMPOTENCY_HEADER = "X-Backorder-Idempotency-Key"
_INVALID_ADDRESS_CODES = frozenset({501, 550, 551, 553})
_AUTH_CODES = frozenset({530, 534, 535, 538})


def message_id_for(idempotency_key: str, from_address: str) -> str:
    """The Message-ID of every send of one outbox message, so a retried send is recognisably the same."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    _, addr = parseaddr(from_address)
    domain = addr.rpartition("@")[2] or "backorder-bot"
    return f"<{digest}@{domain}>"


def build_message(msg: Outgoing, from_address: str) -> EmailMessage:
    """The MIME message for `msg`: text/plain, plus a text/html alternative when there is HTML, plus the
    payload's attachments (inline images of the HTML, files)."""
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = msg.recipient
    message["Subject"] = msg.subject or FALLBACK_SUBJECT
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id_for(msg.idempotency_key, from_address)
    message[IDEMPOTENCY_HEADER] = msg.idempotency_key
    message["X-Backorder-Kind"] = msg.kind
    message.set_content(msg.body)
    if msg.html:
        message.add_alternative(msg.html, subtype="html")
    _attach(message, msg.payload.get("attachments") or [])
    return message


def _attach(message: EmailMessage, attachments: list[dict[str, Any]]) -> None:
    """payload["attachments"]: [{filename, content_type, content_b64, cid?}]. One with a cid is inline in the
    HTML part (multipart/related: <img src="cid:NAME">); the others are attached files (multipart/mixed)."""
    if not attachments:
        return
    html = message.get_body(("html",))
    for a in attachments:
        maintype, _, subtype = str(a["content_type"]).partition(";")[0].strip().partition("/")
        data = base64.b64decode(a["content_b64"])
        if a.get("cid") and html is not None:
            html.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{a['cid']}>",
                             filename=str(a["filename"]), disposition="inline")
    for a in attachments:
        if not (a.get("cid") and html is not None):
            maintype, _, subtype = str(a["content_type"]).partition(";")[0].strip().partition("/")
            message.add_attachment(base64.b64decode(a["content_b64"]), maintype=maintype, subtype=subtype,
                                   filename=str(a["filename"]))


def _by_code(code: int, message: str, *, permanent_reason: str = "rejected") -> SendError:
    detail = f"{code} {message}".strip()
    if 400 <= code < 500:
        return RetryableError("smtp_4xx", detail)
    if 500 <= code < 600:
        return PermanentError(permanent_reason, detail)
    # A reply outside 4xx/5xx where an error was expected: the server is confused, try later.
    return RetryableError("connection", detail)


def classify(exc: BaseException) -> SendError:
    """The SendError an aiosmtplib / socket exception stands for."""
    if isinstance(exc, SendError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        # One recipient per message, so this holds exactly one refusal.
        first = exc.recipients[0] if exc.recipients else None
        if first is None:
            return PermanentError("rejected", str(exc))
        reason = "invalid_address" if first.code in _INVALID_ADDRESS_CODES else "rejected"
        return _by_code(first.code, first.message, permanent_reason=reason)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        reason = "invalid_address" if exc.code in _INVALID_ADDRESS_CODES else "rejected"
        return _by_code(exc.code, exc.message, permanent_reason=reason)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return _by_code(exc.code, exc.message, permanent_reason="auth_failed")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        reason = "auth_failed" if exc.code in _AUTH_CODES else "rejected"
        return _by_code(exc.code, exc.message, permanent_reason=reason)
    if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts subclass it too
        return RetryableError("timeout", str(exc))
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(exc.__cause__, ssl.SSLCertVerificationError):
        return PermanentError("tls_failed", str(exc))
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentError("smtp_unsupported", exc.message)
    if isinstance(exc, OSError):  # refused, reset, SMTPServerDisconnected, SMTPConnectError, ssl.SSLError
        return RetryableError("connection", str(exc) or type(exc).__name__)
    if isinstance(exc, aiosmtplib.SMTPException):
        # e.g. "no compatible authentication methods" when the server offers AUTH we cannot use.
        if "auth" in exc.message.lower():
            return PermanentError("smtp_unsupported", exc.message)
        return RetryableError("connection", exc.message)
    if isinstance(exc, ValueError):  # aiosmtplib refuses an address it cannot put on the wire
        return PermanentError("invalid_address", str(exc))
    return RetryableError("connection", f"{type(exc).__name__}: {exc}")


class EmailSender:
    channel = "email"

    def __init__(self, settings: EmailSettings, *, max_connections: int = 4, max_idle_seconds: float = 30.0) -> None:
        self.settings = settings
        self.max_idle_seconds = max_idle_seconds
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._tls_context: ssl.SSLContext | None = None
        if settings.host and (settings.starttls or settings.use_tls):
            try:
                self._tls_context = ssl.create_default_context(cafile=settings.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"email.ca_file: cannot load {settings.ca_file!r}: {exc}") from exc

    async def send(self, msg: Outgoing) -> Sent:
        if not self.settings.host:
            raise PermanentError("channel_not_configured", "email.host is not set")
        try:
            message = build_message(msg, self.settings.from_address)
        except ValueError as exc:  # CR/LF or similar in a header value
            raise PermanentError("invalid_address", str(exc)) from exc
        async with self._slots:
            await self._deliver(message, msg.recipient)
        return Sent(provider_id=message["Message-ID"])

    async def _deliver(self, message: EmailMessage, recipient: str) -> None:
        client, reused = await self._checkout()
        try:
            await self._send_once(client, message, recipient)
        except RetryableError as err:
            if not (reused and isinstance(err.__cause__, ConnectionError)):
                raise
            # A pooled connection the server had dropped while idle: one more try on a fresh one.
            # Should the first copy have gone through after all, the stable Message-ID lets it dedupe.
            client, _ = await self._checkout(fresh=True)
            await self._send_once(client, message, recipient)

    async def _send_once(self, client: aiosmtplib.SMTP, message: EmailMessage, recipient: str) -> None:
        try:
            await client.send_message(message, sender=self._envelope_from(), recipients=[recipient])
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as exc:
            # A refusal leaves the session usable (aiosmtplib sent RSET), unless the server is closing it.
            if client.is_connected and getattr(exc, "code", None) != 421:
                self._idle.append((client, time.monotonic()))
            else:
                self._discard(client)
            raise classify(exc) from exc
        except Exception as exc:
            self._discard(client)
            raise classify(exc) from exc
        except BaseException:  # cancelled mid-transaction: the connection's state is unknown
            self._discard(client)
            raise
        self._idle.append((client, time.monotonic()))

    def _envelope_from(self) -> str:
        return parseaddr(self.settings.from_address)[1] or self.settings.from_address

    async def _checkout(self, *, fresh: bool = False) -> tuple[aiosmtplib.SMTP, bool]:
        now = time.monotonic()
        while self._idle and not fresh:
            client, last_used = self._idle.pop()
            if client.is_connected and now - last_used < self.max_idle_seconds:
                return client, True
            self._discard(client)
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.use_tls,
            start_tls=s.starttls and not s.use_tls,
            tls_context=self._tls_context,
            timeout=s.timeout_seconds,
            username=s.username,
            password=s.password.get_secret_value() if s.password is not None and s.username else None,
        )
        try:
            await client.connect()  # also STARTTLS and login, per the arguments above
        except Exception as exc:
            self._discard(client)
            raise classify(exc) from exc
        return client, False

    @staticmethod
    def _discard(client: aiosmtplib.SMTP) -> None:
        transport = client.transport
        client.close()
        if transport is not None:
            # Abort rather than close: a graceful TLS close waits for the server's close_notify
            # (up to 30 s) and leaks the socket if the event loop ends first. Nothing is lost, the
            # session is either finished (QUIT answered) or already broken.
            transport.abort()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for client, _ in idle:
            transport = client.transport  # quit() forgets it, and we still want to abort it
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.quit(), timeout=2.0)
            self._discard(client)
            if transport is not None:
                transport.abort()
        # One loop turn, so aborted transports finish closing before the caller's loop may end.
        await asyncio.sleep(0)
