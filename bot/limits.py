"""Per-client rate limits and request size limits of the whole HTTP app, as one ASGI middleware.

Rate: a token bucket per (client address, route group), in this process's memory: a group is a path's
first segment (/events, /slack/..., /twilio/..., /api/messages, /offers/...), so a flood of one door does
not starve another, and a client keeps up `rate_per_second` with bursts of `burst`. Over it: 429 with
Retry-After. No Redis: with N processes a client gets at most N times the rate, which is the point of a
guard against floods, not a quota. The client is the ASGI scope's address; behind a proxy, uvicorn's
--proxy-headers / --forwarded-allow-ips make that the real caller (docs/security.md). /healthz and
/readyz are exempt: a probe must never be told to wait.

Size: a body over `max_body_bytes` (`events_max_body_bytes` for POST /events) is refused with 413 before
a route sees it when Content-Length says so, and as soon as the bytes pass the bound when it does not.
The chat doors keep their own, smaller bounds (bot/bodies.py).
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from threading import Lock

from fastapi import FastAPI, HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backorder.config import LimitSettings

Clock = Callable[[], float]
EVENTS_PATH = "/events"


def route_group(path: str) -> str:
    """The first path segment ("/slack/events" -> "slack"); "/" is "root"."""
    return path.strip("/").split("/", 1)[0] or "root"


@dataclass(slots=True)
class Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """Token buckets keyed by (client, group); the least recently used go first past `max_keys`.

    A bucket dropped that way was the idlest one, and a new one starts full: the worst a full table
    does is forgive a client who has been quiet longest.
    """

    def __init__(self, settings: LimitSettings, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._buckets: OrderedDict[tuple[str, str], Bucket] = OrderedDict()
        self._lock = Lock()  # the middleware runs on one loop, but tests and threads may share an app

    def rule(self, group: str) -> tuple[float, int]:
        own = self.settings.groups.get(group)
        return (own.rate_per_second, own.burst) if own else (self.settings.rate_per_second, self.settings.burst)

    def take(self, client: str, group: str) -> float:
        """0 when the request may pass (a token is spent); otherwise the seconds until one is back."""
        rate, burst = self.rule(group)
        now = self.clock()
        key = (client, group)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = Bucket(float(burst), now)
                while len(self._buckets) > self.settings.max_clients:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.at) * rate)
                bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate

    def __len__(self) -> int:
        return len(self._buckets)


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, settings: LimitSettings, clock: Clock = time.monotonic) -> None:
        self.app = app
        self.settings = settings
        self.buckets = TokenBuckets(settings, clock)
        self.exempt = frozenset(settings.exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.settings.enabled and path not in self.exempt:
            client = scope.get("client")
            group = route_group(path)
            wait = self.buckets.take(client[0] if client else "unknown", group)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                await _answer(send, 429, f"too many requests to /{group} from this client: retry in {retry} s",
                              [(b"retry-after", str(retry).encode())])
                return
        limit = self.max_body(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer(send, 413, f"body: over {limit} bytes")
            return
        started = False

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                counted["bytes"] += len(message.get("body", b""))
                if counted["bytes"] > limit:
                    # FastAPI passes an HTTPException raised while reading a body on as it is: 413.
                    raise HTTPException(413, f"body: over {limit} bytes")
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        counted = {"bytes": 0}
        try:
            await self.app(scope, counting_receive, watching_send)
        except HTTPException as exc:  # read outside a route (a middleware): answer it here if we still can
            if exc.status_code != 413 or started:
                raise
            await _answer(send, 413, str(exc.detail))

    def max_body(self, scope: Scope) -> int:
        if scope["path"] == EVENTS_PATH:
            return self.settings.events_max_body_bytes
        return self.settings.max_body_bytes


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None  # not a number: the server refuses it before us
    return None


async def _answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def mount(app: FastAPI, settings: LimitSettings, clock: Clock = time.monotonic) -> None:
    """Mounted just before the request middleware (bot/observability.py), which thus logs and counts refusals."""
    app.add_middleware(LimitsMiddleware, settings=settings, clock=clock)
