"""The drafts queue over HTTP: GET /drafts, GET /drafts/{id}, POST /drafts/{id}/approve and /reject.

The API's bearer token is the operator's, so a decision made through it is recorded as `api` unless
the body names the staff member acting (`staff_id`), who must then hold an approver role. Deciding a
draft that is already decided answers 409 with who decided it and when.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.ids import RowId
from bot.scopes import Needs
from services import approvals
from services.channels import list_staff
from services.context import Context

Status = Literal["drafting", "pending", "approved", "rejected", "sent", "expired", "cancelled"]
API_ACTOR = "api"


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(default=None, max_length=4000, description="the edited text to send instead")
    staff_id: str | None = Field(default=None, min_length=1, max_length=100,
                                 description="who is deciding (must hold an approver role); default: api")
    reason: str | None = Field(default=None, max_length=500, description="why (rejections)")


def same_origin(request: Request) -> None:
    """Refuse a decision a browser sends on behalf of another site (CSRF): without an API token, a page
    anywhere could otherwise post an empty form here. Browsers say where a request comes from; API
    clients (curl, SDKs) send neither header and are not affected."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site in ("cross-site", "same-site") or (
            origin is not None and urlsplit(origin).netloc != request.headers.get("host", "")):
        raise HTTPException(403, "a decision cannot come from another site's page")


def mount(app: FastAPI, ctx: Context, needs: Needs, kick: Callable[[], None]) -> None:
    """`kick`: wake the notification worker (an approval queued the customer's message)."""
    deciding = [needs("write"), Depends(same_origin)]

    @app.get("/drafts", dependencies=[needs("read")])
    def get_drafts(status: Status | None = None, order_id: str | None = None, customer_id: str | None = None,
                   limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        """Drafts, newest first: [{id, kind, order_id, customer_id, text, status, created_at, decided_by, ...}]."""
        return approvals.list_drafts(ctx, status, limit=limit, order_id=order_id, customer_id=customer_id)

    @app.get("/drafts/{draft_id}", dependencies=[needs("read")])
    def get_draft(draft_id: RowId) -> dict[str, Any]:
        try:
            return approvals.get_draft(ctx, draft_id)
        except approvals.DraftNotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @app.post("/drafts/{draft_id}/approve", dependencies=deciding)
    def approve(draft_id: RowId, body: DecisionIn | None = None) -> Any:
        """Approve a pending draft, optionally with {"text": edited}: the message is queued for the customer."""
        body = body or DecisionIn()
        out = _decide(ctx, lambda who: approvals.approve(ctx, draft_id, who, via="api", text=body.text), body)
        kick()
        return out

    @app.post("/drafts/{draft_id}/reject", dependencies=deciding)
    def reject(draft_id: RowId, body: DecisionIn | None = None) -> Any:
        """Reject a pending draft: nothing is sent to the customer."""
        body = body or DecisionIn()
        if body.text is not None:
            raise HTTPException(422, [{"loc": ["body", "text"], "msg": "a rejection sends no text",
                                       "type": "value_error"}])
        out = _decide(ctx, lambda who: approvals.reject(ctx, draft_id, who, via="api", reason=body.reason), body)
        kick()  # the approval cards are redrawn with the outcome
        return out


def acting(ctx: Context, staff_id: str | None) -> approvals.Approver:
    """The API token stands for an operator allowed to decide; a named staff member needs an approver role."""
    if staff_id is None:
        return approvals.Approver(API_ACTOR, frozenset(ctx.settings.drafts.approver_roles))
    with ctx.engine.connect() as conn:
        member = next((m for m in list_staff(conn, ctx.settings) if m["staff_id"] == staff_id), None)
    if member is None:
        raise HTTPException(422, [{"loc": ["body", "staff_id"], "msg": f"no staff member {staff_id!r}",
                                   "type": "value_error"}])
    return approvals.Approver(staff_id, frozenset(member["roles"]))


def _decide(ctx: Context, decide: Any, body: DecisionIn) -> Any:
    try:
        return decide(acting(ctx, body.staff_id))
    except approvals.DraftNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except approvals.NotAllowed as exc:
        raise HTTPException(403, str(exc)) from None
    except approvals.BadEdit as exc:
        raise HTTPException(422, [{"loc": ["body", "text"], "msg": str(exc), "type": "value_error"}]) from None
    except approvals.AlreadyDecided as exc:
        view = exc.view
        return JSONResponse({"detail": str(exc), "status": view["status"], "decided_by": view["decided_by"],
                             "decided_at": view["decided_at"], "draft": view}, status_code=409)
