"""Signed JSON POSTs to the configured webhook endpoints (aiohttp, one keep-alive session).

How responses and failures are classified (the reason strings feed KPIs, keep them stable):

- 2xx                          -> Sent(provider_id=X-Request-Id or None, delivered=True)
- 3xx                          -> PermanentError("redirect_refused"): a redirect could point anywhere
- 429                          -> RetryableError("rate_limited", retry_after=Retry-After)
- 408                          -> RetryableError("http_408")
- 5xx                          -> RetryableError("http_5xx") (Retry-After honoured when present)
- other 4xx (and >= 600)       -> PermanentError("http_<status>")
- timeout (timeout_seconds)    -> RetryableError("timeout")
- refused / reset / DNS error  -> RetryableError("connection")
- certificate not trusted      -> PermanentError("tls_failed")
- URL refused by the policy, a name resolving only to non-public addresses, or a URL that is not
  a configured endpoint        -> PermanentError("url_not_allowed", detail=why)
- payload not JSON-serialisable -> PermanentError("invalid_payload")
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from importlib import metadata

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from backorder.config import WebhookSettings
from notifiers.senders.base import (
    Outgoing,
    PermanentError,
    RetryableError,
    SendError,
    Sent,
    parse_retry_after,
    wait_turn,
)
from notifiers.signing import sign
from notifiers.urls import check_webhook_url, forbidden_reason, is_localhost_name, normalise_url

_BODY_DRAIN_LIMIT = 64 * 1024


def _version() -> str:
    try:
        return metadata.version("backorder-bot")
    except metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"backorder-bot/{_version()}"


class BlockedAddressError(OSError):
    """A host name resolved only to addresses the URL policy refuses (raised inside the connector)."""


class GuardedResolver(AbstractResolver):
    """Drops loopback/private/link-local answers, so a public-looking name cannot reach inside.

    aiohttp skips the resolver for IP literals; those are judged by `check_webhook_url` before
    the request, so between the two every address the connector dials has been checked.
    """

    def __init__(self, inner: AbstractResolver | None = None, *, allow_private: bool) -> None:
        self._inner = inner or DefaultResolver()
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if not self.allow_private and is_localhost_name(host):
            raise BlockedAddressError(f"{host} is loopback")
        results = await self._inner.resolve(host, port, family)
        if self.allow_private:
            return results
        kept: list[ResolveResult] = []
        refused: list[str] = []
        for result in results:
            try:
                why = forbidden_reason(ipaddress.ip_address(result["host"]))
            except ValueError:
                why = "not an IP address"
            if why is None:
                kept.append(result)
            else:
                refused.append(f"{result['host']} ({why})")
        if not kept:
            raise BlockedAddressError(f"{host} resolves only to non-public addresses: {', '.join(refused)}")
        return kept

    async def close(self) -> None:
        await self._inner.close()


def _blocked_cause(exc: BaseException) -> BlockedAddressError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BlockedAddressError):
            return current
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, BlockedAddressError):
            return os_error
        current = current.__cause__ or current.__context__
    return None


def classify_status(status: int, headers: dict[str, str] | None = None) -> SendError | None:
    """None for 2xx; otherwise the error a response status stands for."""
    headers = headers or {}
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        location = headers.get("Location", "")
        return PermanentError("redirect_refused", f"{status} to {location}" if location else str(status))
    if status == 429:
        return RetryableError("rate_limited", "429", retry_after=parse_retry_after(headers.get("Retry-After")))
    if status == 408:
        return RetryableError("http_408", "408")
    if 500 <= status < 600:
        return RetryableError("http_5xx", str(status), retry_after=parse_retry_after(headers.get("Retry-After")))
    return PermanentError(f"http_{status}", str(status))


def classify_exception(exc: BaseException) -> SendError:
    """The SendError an aiohttp / socket exception stands for."""
    if isinstance(exc, SendError):
        return exc
    blocked = _blocked_cause(exc)
    if blocked is not None:
        return PermanentError("url_not_allowed", str(blocked))
    if isinstance(exc, TimeoutError):  # asyncio timeouts and aiohttp's Server/ConnectionTimeoutError
        return RetryableError("timeout", str(exc) or "timed out")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return PermanentError("tls_failed", str(exc))
    if isinstance(exc, aiohttp.InvalidUrlClientError):
        return PermanentError("url_not_allowed", str(exc))
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return RetryableError("connection", f"dns: {exc}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return RetryableError("connection", str(exc) or type(exc).__name__)
    return RetryableError("connection", f"{type(exc).__name__}: {exc}")


class WebhookSender:
    channel = "webhook"

    waits_turn = True  # base.wait_turn() right before each request: the dispatcher paces it there

    def __init__(
        self, settings: WebhookSettings, *, resolver: AbstractResolver | None = None, connection_limit: int = 100
    ) -> None:
        self.settings = settings
        self.connection_limit = connection_limit
        self._inner_resolver = resolver
        # Per URL as the outbox spells it: (normalised URL, secret), or why it is refused.
        self._targets: dict[str, tuple[str, str | None] | str] = {}
        # Keyed by the normalised URL, so the outbox's spelling of a URL need not match the file's.
        self._secrets: dict[str, str | None] = {
            normalise_url(e.url): e.secret.get_secret_value() if e.secret is not None else None
            for e in settings.all_endpoints()
        }
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None
        # At most as many requests in flight as the pool has connections: a send then never waits
        # for a free connection inside its own timeout, so "timeout" means the endpoint was slow.
        self._slots = asyncio.Semaphore(connection_limit)

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: a ClientSession belongs to the loop that is running when it is made.
        if self._session is None or self._session.closed:
            self._resolver = GuardedResolver(self._inner_resolver, allow_private=self.settings.allow_private)
            connector = aiohttp.TCPConnector(limit=self.connection_limit, resolver=self._resolver)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
                headers={"User-Agent": USER_AGENT},
                trust_env=False,  # an HTTP(S)_PROXY from the environment would dial addresses we never checked
            )
        return self._session

    def target(self, url: str) -> tuple[str, str | None]:
        """The normalised URL and its signing secret, or PermanentError("url_not_allowed").

        The answer depends on the URL and the settings only, so it is worked out once per URL:
        at thousands of sends a second the check was a tenth of a send's cost. (Every DNS answer
        is still checked by the resolver, on each new connection.)
        """
        known = self._targets.get(url)
        if known is None:
            try:
                known = self._target(url)
            except PermanentError as exc:
                known = exc.detail
            self._targets[url] = known
        if isinstance(known, str):
            # A fresh error each time: re-raising one cached instance would grow its traceback forever.
            raise PermanentError("url_not_allowed", known)
        return known

    def _target(self, url: str) -> tuple[str, str | None]:
        try:
            normalised = check_webhook_url(
                url, allow_http=self.settings.allow_http, allow_private=self.settings.allow_private
            )
        except ValueError as exc:
            raise PermanentError("url_not_allowed", str(exc)) from exc
        if normalised not in self._secrets:
            raise PermanentError("url_not_allowed", f"{normalised} is not a configured webhook endpoint")
        return normalised, self._secrets[normalised]

    async def send(self, msg: Outgoing) -> Sent:
        url, secret = self.target(msg.recipient)
        try:
            body = json.dumps(msg.payload, separators=(",", ":"), sort_keys=True).encode()
        except (TypeError, ValueError) as exc:
            raise PermanentError("invalid_payload", str(exc)) from exc
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Backorder-Event": msg.kind,
            "X-Backorder-Delivery": msg.idempotency_key,
            "X-Backorder-Timestamp": str(timestamp),
        }
        if secret:
            headers["X-Backorder-Signature"] = sign(secret, timestamp, body)
        async with self._slots:
            await wait_turn()
            try:
                async with self._client().post(url, data=body, headers=headers, allow_redirects=False) as resp:
                    status = resp.status
                    response_headers = {
                        k: v
                        for k in ("X-Request-Id", "Retry-After", "Location")
                        if (v := resp.headers.get(k)) is not None
                    }
                    await self._drain(resp)
            except (aiohttp.ClientError, OSError) as exc:  # OSError covers TimeoutError
                raise classify_exception(exc) from exc
        error = classify_status(status, response_headers)
        if error is not None:
            raise error
        return Sent(provider_id=response_headers.get("X-Request-Id"), delivered=True)

    @staticmethod
    async def _drain(resp: aiohttp.ClientResponse) -> None:
        """Read a small body to its end so the connection returns to the pool for the next send."""
        try:
            remaining = _BODY_DRAIN_LIMIT
            while remaining > 0:
                chunk = await resp.content.read(remaining)
                if not chunk:
                    return
                remaining -= len(chunk)
        except (aiohttp.ClientError, OSError):
            # The status line is what counts: a 2xx stays accepted even if its body is cut short
            # (a retry would deliver twice), any other status is classified by its code.
            return

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
        resolver, self._resolver = self._resolver, None
        if resolver is not None:  # the connector leaves a resolver it was given open
            await resolver.close()
