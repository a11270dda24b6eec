"""The REST API: intake of canonical events and reads of the store."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.exc import DataError, OperationalError
from starlette.requests import ClientDisconnect

from bot import (
    approvals_page,
    drafts_api,
    error_responses,
    limits,
    nul_guard,
    observability,
    offer_links,
    reports_api,
    substitutes_api,
    suggestions_api,
    tasks_api,
)
from bot.channels import mount_channels
from bot.dashboard import mount as mount_dashboard
from bot.ids import RowId
from bot.scopes import Needs
from bot.scopes import guarded as tokens_guarded
from intake.envelope import event_json_schema, parse_events
from intake.errors import EventValidationError
from intake.payloads import CustomerChannel
from services import reads
from services.applier import Applier
from services.backlog import BacklogProbe
from services.chat import ChatUser
from services.chat import reply as chat_reply
from services.context import Context
from services.inbox import drain
from services.inbox_writer import InboxWriter
from services.notify_kpis import notification_kpis
from services.subscriptions import UnknownReference, list_subscriptions, subscribe, unsubscribe
from services.worker import WorkerThread
from store import outbox
from store.db import unit_of_work

log = logging.getLogger(__name__)

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


NOTIFICATION_STATUSES = ("held", "pending", "sending", "sent", "delivered", "failed", "dead", "cancelled", "digested")


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1, max_length=100, description="Who wants to hear")
    sku: str = Field(min_length=1, max_length=100, description="The SKU to watch")
    channel: CustomerChannel | None = Field(default=None, description="Channel for this notice; default: theirs")


class ChatUserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str | None = Field(default=None, max_length=100)
    staff_id: str | None = Field(default=None, max_length=100)
    role: str | None = Field(default=None, max_length=40, description="the staff member's role")
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=320)

    @model_validator(mode="after")
    def _one_identity(self) -> ChatUserIn:
        if not any((self.customer_id, self.staff_id, self.phone, self.email)):
            raise ValueError("give customer_id, staff_id (with role), phone or email")
        return self


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: ChatUserIn
    text: str = Field(min_length=1, max_length=2000)
    channel: Literal["web", "sms", "whatsapp", "slack", "teams", "email", "console"] = Field(
        default="web", description="where the answer will be shown: it decides the answer's style")


def create_app(ctx: Context, *, background_applier: bool = True, notify_worker: bool = False) -> FastAPI:
    worker = WorkerThread(ctx) if notify_worker else None
    applier = Applier(ctx, on_applied=worker.kick if worker else None)
    backlog_probe = BacklogProbe(ctx)
    inbox_writer = InboxWriter(ctx)  # POST /events bodies that arrive together share a commit

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if background_applier:
            applier.start()
            applier.kick()  # events stored before a restart are applied now
        if worker is not None:
            worker.start()
        yield
        await run_in_threadpool(inbox_writer.close)
        if background_applier:
            applier.stop()
        if worker is not None:
            worker.stop()

    guarded = tokens_guarded(ctx.settings)
    # With a token set, the schema is behind it too ("every endpoint but /healthz"); the
    # interactive /docs page cannot send a bearer token for it, so it is off then.
    app = FastAPI(title="backorder-bot", version="0.1.0", lifespan=lifespan,
                  description="Backorder intake, allocation and ETA projection.",
                  openapi_url=None if guarded else "/openapi.json", docs_url=None if guarded else "/docs",
                  redoc_url=None)

    needs = Needs(ctx)  # each route states its scope: read, write or admin (docs/api-tokens.md)

    if guarded:
        @app.get("/openapi.json", dependencies=[needs("read")], include_in_schema=False)
        def openapi() -> dict[str, Any]:
            return app.openapi()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/schemas/events.json", dependencies=[needs("read")])
    def events_schema() -> dict[str, Any]:
        """The JSON Schema of POST /events bodies (docs/events.schema.json)."""
        return event_json_schema()

    @app.post("/events", dependencies=[needs("write")], openapi_extra=EVENTS_BODY)
    async def post_events(request: Request, wait: bool = True) -> Response:
        """Store one event or an array of up to 10,000, then apply them (unless wait=false)."""
        try:
            raw = await request.body()
        except ClientDisconnect:
            # The sender gave up (its timeout) before the body arrived: nothing was read, nothing stored, and
            # no one is left to answer. Not an error of ours; under overload, logging tracebacks would only add load.
            log.info("POST /events: the client disconnected before its body arrived")
            return Response(status_code=499)
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
        outcomes, inbox_ids = await inbox_writer.store(envelopes)
        if wait and inbox_ids:
            await run_in_threadpool(drain, ctx, inbox_ids)
            if worker is not None:
                worker.kick()
        elif inbox_ids:
            applier.kick()
        results = [{"event_id": e["event_id"], "source": e["source"], "status": s}
                   for e, s in zip(envelopes, outcomes, strict=True)]
        body = {"accepted": outcomes.count("accepted"), "duplicate": outcomes.count("duplicate"),
                "applied": bool(wait), "results": results}
        if not wait:  # stored, never refused: past the configured depth the answer only says the workers are behind
            backlog = backlog_probe.fresh() or await run_in_threadpool(backlog_probe.get)
            if backlog is not None and backlog.behind:
                body["backlog"] = backlog.hint()
        return JSONResponse(body, status_code=200 if wait else 202)

    @app.get("/orders/{order_id}", dependencies=[needs("read")])
    def get_order(order_id: str) -> dict[str, Any]:
        with ctx.engine.connect() as conn:
            order = reads.get_order(conn, order_id)
        if order is None:
            raise HTTPException(404, f"order {order_id} not found")
        return order

    @app.get("/backorders", dependencies=[needs("read")])
    def get_backorders(
        sku: str | None = None, warehouse_id: str | None = None, customer_id: str | None = None,
        supplier_id: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        f = reads.BackorderFilter(sku, warehouse_id, customer_id, supplier_id, limit, offset)
        with ctx.engine.connect() as conn:
            items = reads.list_backorders(conn, f, ctx.today())
        return {"count": len(items), "backorders": items}

    @app.get("/skus/{sku}", dependencies=[needs("read")])
    def get_sku(sku: str) -> dict[str, Any]:
        with ctx.engine.connect() as conn:
            found = reads.get_sku(conn, sku)
        if found is None:
            raise HTTPException(404, f"SKU {sku} not found")
        return found

    @app.get("/tasks", dependencies=[needs("read")])
    def get_tasks(status: str | None = "open", kind: str | None = None) -> dict[str, Any]:
        with ctx.engine.connect() as conn:
            return {"tasks": reads.list_tasks(conn, status or None, kind, now=ctx.now())}

    @app.get("/incidents", dependencies=[needs("read")])
    def get_incidents(status: str | None = None, sku: str | None = None) -> dict[str, Any]:
        with ctx.engine.connect() as conn:
            return {"incidents": reads.list_incidents(conn, status, sku)}

    @app.get("/notifications", dependencies=[needs("read")])
    def get_notifications(
        order_id: str | None = None, customer_id: str | None = None,
        status: Annotated[Literal[NOTIFICATION_STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
        kind: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    ) -> list[dict[str, Any]]:
        """Messages, newest first: [{id, kind, channel, recipient, status, attempts, created_at, sent_at, error}]."""
        with ctx.engine.connect() as conn:
            rows = outbox.listing(conn, order_id=order_id, customer_id=customer_id, status=status, kind=kind,
                                  limit=limit)
        return [_notification(r) for r in rows]

    @app.post("/notifications/{notification_id}/retry", dependencies=[needs("admin")])
    def retry_notification(notification_id: RowId) -> dict[str, Any]:
        """Send a dead, failed or cancelled message again now."""
        with unit_of_work(ctx.engine) as conn:
            done = outbox.retry(conn, [notification_id], ctx.now(),
                                timedelta(hours=ctx.settings.notify.max_age_hours))
        if not done:
            raise HTTPException(409, f"notification {notification_id} is not dead, failed or cancelled")
        if worker is not None:
            worker.kick()
        return {"retried": done}

    @app.post("/notifications/{notification_id}/cancel", dependencies=[needs("admin")])
    def cancel_notification(notification_id: RowId) -> dict[str, Any]:
        """Cancel a message that has not gone out."""
        with unit_of_work(ctx.engine) as conn:
            done = outbox.cancel(conn, [notification_id], ctx.now())
        if not done:
            raise HTTPException(409, f"notification {notification_id} is not pending, failed or held")
        return {"cancelled": done}

    @app.get("/metrics/notifications", dependencies=[needs("read")])
    def get_notification_metrics(days: Annotated[float, Query(gt=0, le=366)] = 7.0) -> dict[str, Any]:
        """Delivery rate, p50/p99 time from event to provider acceptance, opt-out rate, dead letters by reason."""
        with ctx.engine.connect() as conn:
            return notification_kpis(conn, ctx.now(), days)

    @app.post("/subscriptions", dependencies=[needs("write")], status_code=201)
    def post_subscription(body: SubscriptionIn, response: Response) -> dict[str, Any]:
        """Tell this customer when the SKU is back in stock (at once if it has stock now)."""
        try:
            sub, created = subscribe(ctx, body.customer_id, body.sku, body.channel)
        except UnknownReference as exc:
            raise HTTPException(422, [{"loc": ["body", exc.field], "msg": exc.msg, "type": "unknown_reference"}]) \
                from exc
        if not created:
            response.status_code = 200
        if worker is not None:
            worker.kick()
        return sub

    @app.get("/subscriptions", dependencies=[needs("read")])
    def get_subscriptions(customer_id: str | None = None, sku: str | None = None,
                          status: str | None = None) -> list[dict[str, Any]]:
        with ctx.engine.connect() as conn:
            return list_subscriptions(conn, customer_id, sku, status)

    @app.delete("/subscriptions/{subscription_id}", dependencies=[needs("write")])
    def delete_subscription(subscription_id: RowId) -> dict[str, Any]:
        if not unsubscribe(ctx, subscription_id):
            raise HTTPException(404, f"no open subscription {subscription_id}")
        return {"cancelled": subscription_id}

    @app.post("/chat", dependencies=[needs("write")])
    def post_chat(body: ChatIn) -> dict[str, Any]:
        """Ask in plain words; the answer is scoped to the asker: {"intent", "entities", "reply"}."""
        u = body.user
        who = ChatUser(customer_id=u.customer_id, staff_id=u.staff_id,
                       roles=frozenset([u.role]) if u.role else frozenset(), phone=u.phone, email=u.email)
        answer = chat_reply(ctx, who, body.text, body.channel)
        if worker is not None:
            worker.kick()  # a subscription may have queued a message
        return {"intent": answer.intent, "entities": answer.entities, "reply": answer.reply}

    kick = worker.kick if worker is not None else lambda: None
    drafts_api.mount(app, ctx, needs, kick)
    tasks_api.mount(app, ctx, needs, kick)  # POST /tasks/{id}/take, /finish, /reassign
    suggestions_api.mount(app, ctx, needs, kick)  # POST /tasks/{id}/approve, /reject (reorder suggestions)
    substitutes_api.mount(app, ctx, needs)
    reports_api.mount(app, ctx, needs)  # a chart also answers a signed link (Teams fetches card images)
    offer_links.mount(app, ctx, kick)  # signed e-mail links: the signature authorises, no bearer token
    approvals_page.mount(app, ctx, needs, kick)
    mount_dashboard(app, ctx, needs, kick)  # /dashboard: docs/dashboard.md
    nul_guard.mount(app)  # %00 in a path or query: a 422 naming it, not a database error
    limits.mount(app, ctx.settings.limits)  # per-client rates, body sizes: docs/security.md
    observability.mount(app, ctx, needs)  # /readyz, /metrics, request ids
    app.state.channels = mount_channels(app, ctx, kick)
    error_responses.declare(app, ctx.settings.limits)  # 401/403/404/409/413/429... in /openapi.json

    @app.exception_handler(DataError)
    async def value_not_storable(_request: Request, exc: DataError) -> JSONResponse:
        # A value the checks before the store let through but the database refuses (a NUL in a text
        # field of a chat message, a number past a column's range): the caller's input, so a 422.
        reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        log.info("value refused by the store: %s", reason)
        return JSONResponse({"detail": f"a value cannot be stored: {reason}"}, status_code=422)

    @app.exception_handler(OperationalError)
    async def store_unavailable(_request: Request, exc: OperationalError) -> JSONResponse:
        # A connection lost mid-request (the database restarting, a backend killed): say so and that a retry is
        # safe, rather than a bare 500. Whether the commit landed is unknown: a retry answers stored events as
        # duplicates (the idempotency key), so nothing is stored twice.
        log.warning("store unavailable: %s", str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__)
        return JSONResponse({"detail": "the database is unavailable (restarting or connection lost); retry the "
                                       "same request: what was already stored is answered as duplicate"},
                            status_code=503, headers={"Retry-After": "1"})

    return app


def _notification(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in outbox.LIST_COLUMNS}
    for k in ("created_at", "sent_at"):
        out[k] = out[k].isoformat() if out[k] else None
    out.update(order_id=row["order_id"], customer_id=row["customer_id"], role=row["role"],
               error_reason=row["error_reason"], due_at=row["due_at"].isoformat() if row["due_at"] else None)
    return out
