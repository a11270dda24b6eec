"""Who Teams is to us and who we are to Teams: inbound JWT checks and outbound bot tokens, from [teams].

Shared by the front door (bot/teams) and the sender (notifiers/senders/teams.py), so it lives here, below both.

Inbound, the Agents SDK validates the Bot Framework JWT (signature from Microsoft's JWKS, audience =
our app id, issuer in the tenant's allow-list). Outbound, the Bot Connector wants a client-credentials
token of our app for https://api.botframework.com; the SDK's MSAL provider lives in another package
(microsoft-agents-authentication-msal, not installed), so the small client-credentials exchange is here.
In anonymous (local development) mode nothing is validated unless a token is sent, and none is sent.

The bot token goes to an activity's serviceUrl, which the sender of the activity writes: in production
only Microsoft's service hosts (the SDK's OutboundHostValidator list, https only) may receive it, and
the activity's serviceUrl must be the one Microsoft signed into the token (its serviceurl claim).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from microsoft_agents.hosting.core import (
    AgentAuthConfiguration,
    AnonymousTokenProvider,
    ClaimsIdentity,
    ConnectionManager,
    OutboundHostValidator,
)
from microsoft_agents.hosting.core.authorization import AccessTokenProviderBase
from microsoft_agents.hosting.core.authorization.jwt import _authorize_request
from microsoft_agents.hosting.core.http import HttpResponse
from yarl import URL

from backorder.config import TeamsSettings

TOKEN_MARGIN_S = 300.0  # renew this long before expiry: a token must outlive the request that carries it


def auth_configuration(settings: TeamsSettings) -> AgentAuthConfiguration:
    """The SDK's view of [teams]: anonymous only when configured so, otherwise app id + tenant + secret."""
    if settings.anonymous and settings.app_id is None:
        return AgentAuthConfiguration(anonymous_allowed=True, connection_name="SERVICE_CONNECTION")
    return AgentAuthConfiguration(
        client_id=settings.app_id,
        tenant_id=settings.tenant_id,
        client_secret=settings.app_password.get_secret_value() if settings.app_password else None,
        anonymous_allowed=settings.anonymous,
        validate_issuer=True,
        connection_name="SERVICE_CONNECTION",
    )


class _Credential(AsyncTokenCredential):
    def __init__(self, provider: ClientSecretTokenProvider) -> None:
        self._provider = provider

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token, expires_at = await self._provider.token(list(scopes))
        return AccessToken(token, int(expires_at))

    async def close(self) -> None:
        return None

    async def __aexit__(self, *args: object) -> None:
        return None


class ClientSecretTokenProvider(AccessTokenProviderBase):
    """OAuth 2.0 client credentials against Entra ID, one cached token per scope set."""

    def __init__(self, configuration: AgentAuthConfiguration, login_url: str) -> None:
        self._configuration = configuration
        self._login_url = login_url.rstrip("/")
        self._cache: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = asyncio.Lock()

    @property
    def configuration(self) -> AgentAuthConfiguration:
        return self._configuration

    async def get_access_token(self, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:
        wanted = scopes or [f"{resource_url.rstrip('/')}/.default"]
        token, _ = await self.token(wanted, force_refresh=force_refresh)
        return token

    def get_token_credential(self) -> AsyncTokenCredential:
        return _Credential(self)

    async def token(self, scopes: list[str], *, force_refresh: bool = False) -> tuple[str, float]:
        key = tuple(sorted(scopes))
        async with self._lock:
            cached = self._cache.get(key)
            if cached is not None and not force_refresh and cached[1] - TOKEN_MARGIN_S > time.time():
                return cached
            c = self._configuration
            url = f"{self._login_url}/{c.TENANT_ID}/oauth2/v2.0/token"
            form = {"grant_type": "client_credentials", "client_id": c.CLIENT_ID or "",
                    "client_secret": c.CLIENT_SECRET or "", "scope": " ".join(scopes)}
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, \
                    session.post(url, data=form) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200 or "access_token" not in body:
                    # The error code is enough to act on; the description may echo the request.
                    raise PermissionError(f"teams: no bot token from {url}: HTTP {resp.status} "
                                          f"{body.get('error', '') if isinstance(body, dict) else ''}")
            made = (str(body["access_token"]), time.time() + float(body.get("expires_in", 3600)))
            self._cache[key] = made
            return made


def connections(settings: TeamsSettings) -> ConnectionManager:
    """The SDK's connection manager: anonymous tokens in development, client credentials in production."""
    config = auth_configuration(settings)
    login = settings.login_base_url

    def provider(c: AgentAuthConfiguration) -> AccessTokenProviderBase:
        if c.CLIENT_ID is None:
            return AnonymousTokenProvider()
        return ClientSecretTokenProvider(c, login)

    return ConnectionManager(provider, connections_configurations={"SERVICE_CONNECTION": config})


async def authorize(settings_config: AgentAuthConfiguration, header: str | None) -> ClaimsIdentity | HttpResponse:
    """The SDK's own check of an inbound request's Authorization header (401 answers come back as HttpResponse)."""
    return await _authorize_request(header, settings_config)


async def reraise(context: object, error: Exception) -> None:
    """Replaces the SDK's default turn-error handler, which posts the exception text into the chat:
    callers classify the failure (a sender's retry, a 500 Teams redelivers) instead."""
    raise error


def outbound_identity(settings: TeamsSettings) -> ClaimsIdentity:
    """Who we send proactively as: nobody in anonymous mode (no token), our app id otherwise."""
    if settings.app_id is None:
        return ClaimsIdentity()
    return ClaimsIdentity({"aud": settings.app_id, "appid": settings.app_id}, authentication_type="Bearer")


def _origin(url: str | URL) -> tuple[str, str, int | None] | None:
    try:
        parsed = URL(url) if isinstance(url, str) else url
    except (TypeError, ValueError):
        return None
    return (parsed.scheme.lower(), (parsed.host or "").lower(), parsed.port) if parsed.host else None


class ServiceHosts(OutboundHostValidator):
    """Where the bot token may go: Microsoft's Bot Connector hosts (the SDK's defaults), on in production.

    The Entra token endpoint ([teams] login_base_url) is allowed too: it already receives the client
    secret, so a service URL there discloses nothing more (and a local fake of both works in tests).
    """

    def __init__(self, settings: TeamsSettings) -> None:
        super().__init__(enabled=not settings.anonymous)
        self._login = _origin(settings.login_base_url)

    def is_allowed(self, url: str | URL) -> bool:
        if self.enabled and self._login is not None and _origin(url) == self._login:
            return True
        return super().is_allowed(url)


def service_hosts(settings: TeamsSettings) -> ServiceHosts:
    return ServiceHosts(settings)


def same_service_url(claimed: str | None, activity_url: str | None) -> bool:
    """Whether an activity's serviceUrl is the one its token was issued for (scheme, host and port alike)."""
    if not claimed or not activity_url:
        return False
    a, b = _origin(claimed), _origin(activity_url)
    return a is not None and a == b
