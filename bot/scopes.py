"""API tokens and their scopes: who may call which route (docs/api-tokens.md).

Tokens come from `api_token` (the legacy single token: every scope) and `api_tokens` (named, with scopes).
With neither configured the API is open, as it always was. Each route states its one scope where it is
declared, `dependencies=[needs("read")]`; tests/security/test_scopes.py walks the routes to keep it so.
A missing or unknown token is a 401; a known token without the route's scope is a 403 naming the scope.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backorder.config import API_SCOPES, Settings
from services.context import Context

Scope = Literal["read", "write", "admin"]
LEGACY = "api_token"  # the name the legacy token goes by in sessions and 403 answers
bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True, slots=True)
class Caller:
    """A configured token, by name (never by secret), and its scopes."""

    name: str
    scopes: frozenset[str]
    secret: str

    def __repr__(self) -> str:  # a Caller printed in a log or a traceback shows no secret
        return f"Caller(name={self.name!r}, scopes={sorted(self.scopes)})"


def _same(a: str, b: str) -> bool:
    """Constant-time equality that cannot raise on non-ASCII input."""
    return secrets.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


def callers(settings: Settings) -> list[Caller]:
    found = [Caller(LEGACY, frozenset(API_SCOPES), settings.api_token)] if settings.api_token else []
    found += [Caller(t.name, frozenset(t.scopes), t.token.get_secret_value()) for t in settings.api_tokens]
    return found


def guarded(settings: Settings) -> bool:
    """Any token configured: then every route but the public ones needs one."""
    return bool(settings.api_token or settings.api_tokens)


def identify(settings: Settings, given: str | None) -> Caller | None:
    """The token whose secret was given, or None. Every token is compared, so timing tells nothing of which."""
    match = None
    for caller in callers(settings):
        if given is not None and _same(given, caller.secret):
            match = caller
    return match


def by_name(settings: Settings, name: str) -> Caller | None:
    """A token named in a session cookie: removing it from the settings ends its sessions."""
    return next((c for c in callers(settings) if c.name == name), None)


def from_header(settings: Settings, request: Request) -> Caller | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return identify(settings, credentials.strip()) if scheme.lower() == "bearer" else None


def unauthorized(message: str = "missing or unknown bearer token") -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def lacking(caller: Caller, scope: str) -> HTTPException:
    return HTTPException(403, f"the token {caller.name!r} lacks the {scope!r} scope this needs")


class ScopeCheck:
    """The dependency behind `needs(scope)`; `scope` is what the route-walk test reads."""

    def __init__(self, ctx: Context, scope: Scope, allow: Callable[[Request], bool] | None) -> None:
        self.ctx, self.scope, self.allow = ctx, scope, allow

    # async though it awaits nothing: FastAPI runs a sync dependency in the thread pool, one hop per request
    # on every guarded route for a check that is a few dictionary lookups and an HMAC.
    async def __call__(self, request: Request,
                       creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        settings = self.ctx.settings
        if not guarded(settings) or (self.allow is not None and self.allow(request)):
            return
        caller = identify(settings, creds.credentials if creds is not None else None)
        if caller is None:
            raise unauthorized()
        if self.scope not in caller.scopes:
            raise lacking(caller, self.scope)


class Needs:
    """`needs("write")`: the one dependency a route declares for its scope. `allow` lets a request in by
    another proof (a signed link) before any token is asked for."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __call__(self, scope: Scope, allow: Callable[[Request], bool] | None = None) -> DependsParam:
        if scope not in API_SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        return Depends(ScopeCheck(self.ctx, scope, allow))


def declared_scopes(dependencies: list[DependsParam]) -> list[str]:
    """The scopes a route's dependencies declare (for the route-walk test and the docs table)."""
    return [d.dependency.scope for d in dependencies if isinstance(d.dependency, ScopeCheck)]
