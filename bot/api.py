"""The REST API: intake of canonical events and reads of the store."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from intake.envelope import event_json_schema, parse_events
from intake.errors import EventValidationError
from services import reads
from services.applier import Applier
from services.context import Context
from services.inbox import drain, store_events

bearer = HTTPBearer(auto_error=False)
# The body is parsed by intake (to report every error at once), so FastAPI cannot derive its
# schema; the full one, with every event type, is served at /schemas/events.json.
EVENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "description": "One canonical event, or an array of up to 10,000: see GET /schemas/events.json",
            "oneOf": [{"type": "object", "required": ["event_id", "type", "occurred_at", "data"]},
                      {"type": "array", "items": {"type": "object"}, "minItems": 1, "maxItems": 10_000}],
        }}},
    },
}


def create_app(ctx: Context, *, background_applier: bool = True) -> FastAPI:
    applier = Applier(ctx)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if background_applier:
            applier.start()
            applier.kick()  # events stored before a restart are applied now
        yield
        if background_applier:
            applier.stop()

    guarded = bool(ctx.settings.api_token)
    # With a token set, the schema is behind it too ("every endpoint but /healthz"); the
    # interactive /docs page cannot send a bearer token for it, so it is off then.
    app = FastAPI(title="backorder-bot", version="0.1.0", lifespan=lifespan,
                  description="Backorder intake, allocation and ETA projection.",
                  openapi_url=None if guarded else "/openapi.json", docs_url=None if guarded else "/docs",
                  redoc_url=None)

    def authorize(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        token = ctx.settings.api_token
        if token and (creds is None or not secrets.compare_digest(creds.credentials, token)):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    auth = [Depends(authorize)]

    if guarded:
        @app.get("/openapi.json", dependencies=auth, include_in_schema=False)
        def openapi() -> dict[str, Any]:
            return app.openapi()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/schemas/events.json", dependencies=auth)
    def events_schema() -> dict[str, Any]:
        """The JSON Schema of POST /events bodies (docs/events.schema.json)."""
        return event_json_schema()

    @app.post("/events", dependencies=auth, openapi_extra=EVENTS_BODY)
    async def post_events(request: Request, wait: bool = True) -> JSONResponse:
        """Store one event or an array of up to 10,000, then apply them (unless wait=false)."""
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return JSONResponse({"detail": [{"loc": "body", "msg": f"not valid JSON: {exc}",
                                             "type": "json_invalid"}]}, status_code=422)
        try:
            events = parse_events(body)
        except EventValidationError as exc:
            return JSONResponse({"detail": exc.errors}, status_code=422)
        envelopes = [ev.to_dict() for ev in events]
        outcomes, inbox_ids = await run_in_threadpool(store_events, ctx, envelopes)
        if wait and inbox_ids:
            await run_in_threadpool(drain, ctx, inbox_ids)
        elif inbox_ids:
            applier.kick()
        results = [{"event_id": e["event_id"], "source": e["source"], "status": s}
                   for e, s in zip(envelopes, outcomes, strict=True)]
        return JSONResponse({"accepted": outcomes.count("accepted"), "duplicate": outcomes.count("duplicate"),
                             "applied": bool(wait), "results": results},
                            status_code=200 if wait else 202)

    @app.get("/orders/{order_id}", dependencies=auth)
    def get_order(order_id: str) -> dict[str, Any]:
        with ctx.engine.connect() as conn:
            order = reads.get_order(conn, order_id)
        if order is None:
            raise HTTPException(404, f"order {order_id} not found")
        return order

    @app.get("/backorders", dependencies=auth)
    def get_backorders(
        sku: str | None = None, warehouse_id: str | None = None, customer_id: str | None = None,
        supplier_id: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        f = reads.BackorderFilter(sku, warehouse_id, customer_id, supplier_id, limit, offset)
        with ctx.engine.connect() as conn:
            items = reads.list_backorders(conn, f, ctx.today())
        return {"count": len(items), "backorders": items}

    @app.get("/skus/{sku}", dependencies=auth)
    def get_sku(sku: str) -> dict[str, Any]:
        with ctx.engine.connect() as conn:
            found = reads.get_sku(conn, sku)
        if found is None:
            raise HTTPException(404, f"SKU {sku} not found")
        return found

    @app.get("/tasks", dependencies=auth)
    def get_tasks(status: str | None = "open", kind: str | None = None) -> dict[str, Any]:
        with ctx.engine.connect() as conn:
            return {"tasks": reads.list_tasks(conn, status or None, kind)}

    @app.get("/incidents", dependencies=auth)
    def get_incidents(status: str | None = None, sku: str | None = None) -> dict[str, Any]:
        with ctx.engine.connect() as conn:
            return {"incidents": reads.list_incidents(conn, status, sku)}

    return app
