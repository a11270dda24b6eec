"""GET /readyz, GET /metrics and the request middleware (request id, latency, one log line per request).

/healthz stays in bot/api.py: it says the process is alive and needs no token. /readyz and /metrics
need the API token like every other endpoint (Kubernetes probes and Prometheus send a bearer token);
`[health] readyz_public` opens /readyz alone for a load balancer that cannot send a header. Its body
then shows nothing more than check names, revision ids and counts (docs/observability.md).
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.scopes import Needs
from services import metrics, readiness
from services.context import Context
from services.log_context import request_id_from, request_id_var
from services.store_metrics import StoreCollector

log = logging.getLogger("backorder.http")

# Most answers take milliseconds; POST /events with 10,000 events applied in the request, seconds.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
QUIET_PATHS = ("/healthz", "/readyz", "/metrics")  # polled every few seconds: their lines are DEBUG


def mount(app: FastAPI, ctx: Context, needs: Needs) -> None:
    registry = CollectorRegistry()  # one per app: tests build many apps in one process
    metrics.register(registry)
    registry.register(StoreCollector(ctx))
    latency = Histogram("backorder_http_request_duration_seconds", "HTTP request latency by route template",
                        ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=registry)
    app.add_middleware(RequestMiddleware, latency=latency)
    heads = readiness.script_heads()
    readyz_deps = [] if ctx.settings.health.readyz_public else [needs("read")]

    @app.get("/readyz", dependencies=readyz_deps)
    def readyz() -> JSONResponse:
        """200 when the database answers, its schema is at the head and a worker heartbeats; else 503 naming why.
        `backpressure` (the advisory `backlog` check) says the workers are behind without turning it 503."""
        checks = readiness.check(ctx, heads)
        ready = readiness.ready(checks)
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks,
                             "backpressure": bool(checks["backlog"].get("behind"))},
                            status_code=200 if ready else 503)

    # PlainTextResponse: so /openapi.json says text/plain (the exposition format), not JSON.
    @app.get("/metrics", dependencies=[needs("read")], response_class=PlainTextResponse)  # read: a scraper
    async def prometheus_metrics() -> Response:
        """Prometheus text format: events, allocations, messages, queues, latencies (docs/observability.md)."""
        body = await run_in_threadpool(generate_latest, registry)  # the store collector queries the database
        return Response(body, media_type=CONTENT_TYPE_LATEST)


class RequestMiddleware:
    """Gives each request an id (the caller's X-Request-ID when sane), echoes it, and times the request.

    Pure ASGI rather than BaseHTTPMiddleware: the id is set in a contextvar before the app runs, so
    every record logged while serving the request, in FastAPI's thread pool too, carries it.
    """

    def __init__(self, app: ASGIApp, latency: Histogram) -> None:
        self.app = app
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_from(_header(scope, b"x-request-id"))
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            # The route's template (/orders/{order_id}), never the raw path: one series per route.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.latency.labels(scope["method"], route, str(status)).observe(seconds)
            level = logging.DEBUG if scope["path"] in QUIET_PATHS else logging.INFO
            log.log(level, "%s %s %d %.1f ms", scope["method"], scope["path"], status, seconds * 1000,
                    extra={"method": scope["method"], "path": scope["path"], "route": route, "status": status,
                           "duration_ms": round(seconds * 1000, 3)})
            request_id_var.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
