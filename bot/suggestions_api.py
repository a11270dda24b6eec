"""Reorder suggestions over HTTP: POST /tasks/{id}/approve and /tasks/{id}/reject (docs/reorder.md).

The API's bearer token is the operator's; the body names the staff member deciding ({"staff_id"}), whose
roles decide whether they may (procurement for purchases, warehouse_manager for transfers, ops or admin
for both). Answers: 200 with the suggestion; 404 no such suggestion; 403 the staff member may not decide
it; 409 already decided, with who decided what and when; 422 an unknown staff member.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.drafts_api import same_origin
from bot.ids import RowId
from bot.scopes import Needs
from services import suggestions
from services.channels import list_staff
from services.context import Context

VIA = "api"


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff_id: str = Field(min_length=1, max_length=100, description="who decides (procurement, warehouse_manager, "
                                                                     "ops or admin)")


def mount(app: FastAPI, ctx: Context, needs: Needs, kick: Callable[[], None]) -> None:
    """`kick`: wake the notification worker (an approval queued the ERP's webhook, cards are redrawn)."""
    deciding = [needs("write"), Depends(same_origin)]

    @app.post("/tasks/{task_id}/approve", dependencies=deciding)
    def approve(task_id: RowId, body: DecisionIn) -> Any:
        """Approve an open suggestion: `po.requested` or `transfer.requested` goes to the ERP."""
        return _decide(ctx, lambda who: suggestions.approve(ctx, task_id, who, via=VIA), body, kick)

    @app.post("/tasks/{task_id}/reject", dependencies=deciding)
    def reject(task_id: RowId, body: DecisionIn) -> Any:
        """Reject an open suggestion: nothing is sent."""
        return _decide(ctx, lambda who: suggestions.reject(ctx, task_id, who, via=VIA), body, kick)


def decider(ctx: Context, staff_id: str) -> suggestions.Decider:
    with ctx.engine.connect() as conn:
        member = next((m for m in list_staff(conn, ctx.settings) if m["staff_id"] == staff_id), None)
    if member is None:
        raise HTTPException(422, [{"loc": ["body", "staff_id"], "msg": f"no staff member {staff_id!r}",
                                   "type": "value_error"}])
    return suggestions.Decider(staff_id, frozenset(member["roles"] or ()))


def _decide(ctx: Context, decide: Callable[[suggestions.Decider], dict[str, Any]], body: DecisionIn,
            kick: Callable[[], None]) -> Any:
    try:
        out = decide(decider(ctx, body.staff_id))
    except suggestions.SuggestionNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except suggestions.NotAllowed as exc:
        raise HTTPException(403, str(exc)) from None
    except suggestions.AlreadyDecided as exc:
        view = exc.view
        return JSONResponse({"detail": str(exc), "outcome": view["outcome"], "closed_by": view["closed_by"],
                             "closed_at": view["closed_at"], "task": view}, status_code=409)
    kick()
    return out
